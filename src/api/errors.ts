import { Data } from "effect"

/** What a refusal answers: its HTTP status and the code beside it in the body. */
export const ERROR_CODES = {
  400: "bad_request",
  401: "unauthorized",
  403: "forbidden",
  404: "not_found",
  409: "conflict",
  413: "too_large",
  429: "rate_limited",
  502: "upstream_failed",
  503: "unavailable"
} as const

export type ApiStatus = keyof typeof ERROR_CODES

/**
 * A request the API refuses or cannot serve, with the one line the caller reads (naming the
 * delivery, file or field, and what was expected). The routes turn it into `{ error, message }`.
 */
export class ApiError extends Data.TaggedError("ApiError")<{
  readonly status: ApiStatus
  readonly reason: string
  /** Seconds before trying again (429, 503). */
  readonly retryAfter?: number
}> {
  override get message(): string {
    return this.reason
  }
}

export const badRequest = (reason: string) => new ApiError({ status: 400, reason })
export const notFound = (reason: string) => new ApiError({ status: 404, reason })
export const conflict = (reason: string) => new ApiError({ status: 409, reason })
export const tooLarge = (reason: string) => new ApiError({ status: 413, reason })
