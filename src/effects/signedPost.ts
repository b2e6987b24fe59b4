import { Clock, Data, Duration, Effect } from "effect"
import { SIGNATURE_HEADER, signBody } from "../domain/Signature.ts"

/** A signed POST was answered badly or not at all. `retryable`: a 5xx, a 429, or no answer. */
export class PostFailure extends Data.TaggedError("PostFailure")<{ readonly reason: string; readonly retryable: boolean }> {}

/**
 * POSTs a JSON `body` signed with `secret` (`domain/Signature.ts`), under `idempotencyKey`, once;
 * waits at most `timeout` for the answer. What partner webhooks and event subscribers receive.
 */
export const postSigned = (
  url: string,
  secret: string,
  body: string,
  options: { readonly idempotencyKey: string; readonly headers?: Readonly<Record<string, string>>; readonly timeout: Duration.Input }
) =>
  Effect.gen(function*() {
    const timestamp = Math.floor((yield* Clock.currentTimeMillis) / 1000)
    const response = yield* Effect.tryPromise({
      try: (signal) =>
        fetch(url, {
          method: "POST",
          headers: {
            "content-type": "application/json",
            [SIGNATURE_HEADER]: signBody(secret, timestamp, body),
            "idempotency-key": options.idempotencyKey,
            ...options.headers
          },
          body,
          signal
        }).then(async (response) => {
          await response.arrayBuffer()
          return response
        }),
      catch: (cause) => new PostFailure({ reason: cause instanceof Error ? cause.message : String(cause), retryable: true })
    }).pipe(
      Effect.timeoutOrElse({
        duration: options.timeout,
        orElse: () => Effect.fail(new PostFailure({ reason: `no answer within ${Duration.format(Duration.fromInputUnsafe(options.timeout))}`, retryable: true }))
      })
    )
    if (!response.ok) {
      return yield* new PostFailure({ reason: `HTTP ${response.status}`, retryable: response.status >= 500 || response.status === 429 })
    }
  })
