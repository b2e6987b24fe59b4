import { Cause, Effect, Exit, type ManagedRuntime, Result, Schema, Stream } from "effect"
import { type Context, Hono } from "hono"
import { bodyLimit } from "hono/body-limit"
import { recordIssues } from "../../schemas/issues.ts"
import { keyNames } from "../../schemas/DeliveryName.ts"
import type { JobQueue } from "../effects/JobQueue.ts"
import type { Ledger } from "../effects/Ledger.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { Partners } from "../effects/Partners.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { ApiConfig, MAX_JSON_BYTES } from "./ApiConfig.ts"
import {
  completeDelivery,
  deliveryFolder,
  deliveryStatus,
  errorsCsv,
  forgetOpened,
  listDeliveries,
  openDelivery,
  putFile,
  receiving,
  sizeBound
} from "./deliveries.ts"
import { ApiError, type ApiStatus, badRequest, ERROR_CODES } from "./errors.ts"
import { openApiDocument } from "./openapi.ts"
import { DeliveryName, FileName, OpenDelivery } from "./schemas.ts"
import { makeTusServer, tusMetadata, uploadIdCodec } from "./tus.ts"

/** What the API needs from the runtime that serves it. */
export type ApiServices = ObjectStore | PipelineConfig | Ledger | JobQueue | Partners | ApiConfig

type Env = { Variables: { partner: string } }

/**
 * Per-partner request budget: a token bucket refilled at `perMinute` a minute and holding at most
 * that many, so a partner may burst a minute's worth. Kept in this process (each server counts
 * its own requests). Answers undefined when the request may go, else the seconds to wait.
 */
const rateLimiter = (perMinute: number) => {
  const buckets = new Map<string, { tokens: number; at: number }>()
  const perMilli = perMinute / 60_000
  return (partner: string, now: number): number | undefined => {
    const bucket = buckets.get(partner) ?? { tokens: perMinute, at: now }
    bucket.tokens = Math.min(perMinute, bucket.tokens + (now - bucket.at) * perMilli)
    bucket.at = now
    buckets.set(partner, bucket)
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1
      return undefined
    }
    return Math.ceil((1 - bucket.tokens) / perMilli / 1000)
  }
}

const OPTIONS = { errors: "all", onExcessProperty: "error" } as const

/** Decodes `value` with `schema`, or a 400 naming `what` and every problem. */
const decodeOr400 = <S extends Schema.Decoder<unknown>>(schema: S, value: unknown, what: string): Effect.Effect<S["Type"], ApiError> => {
  const result = Schema.decodeUnknownResult(schema)(value, OPTIONS)
  if (Result.isSuccess(result)) return Effect.succeed(result.success)
  const issues = recordIssues(result.failure.issue, value).map((issue) => (issue.path === "" || issue.path === "$" ? issue.message.en : `${issue.path}: ${issue.message.en}`))
  return Effect.fail(badRequest(`${what}: ${issues.join("; ")}`))
}

/** The partner's delivery named by the path, its name checked. */
const pathDelivery = (c: Context<Env>) =>
  decodeOr400(DeliveryName, c.req.param("delivery"), "delivery name").pipe(
    Effect.flatMap((delivery) => deliveryFolder(c.get("partner"), delivery))
  )

const errorBody = (status: ApiStatus, message: string) => ({ error: ERROR_CODES[status], message })

/** One JSON shape for every refusal and failure; statuses from tags here and nowhere else. */
const failure = (c: Context, cause: Cause.Cause<unknown>): Response => {
  const failed = cause.reasons.find((reason) => reason._tag === "Fail")
  const error: unknown = failed?._tag === "Fail" ? failed.error : undefined
  const answer = (status: ApiStatus, message: string, retryAfter?: number) => {
    if (retryAfter !== undefined) c.header("retry-after", String(retryAfter))
    return c.json(errorBody(status, message), status)
  }
  if (error instanceof ApiError) return answer(error.status, error.reason, error.retryAfter)
  if (typeof error === "object" && error !== null && "_tag" in error) {
    const message = error instanceof Error ? error.message : String(error)
    if (error._tag === "ObjectStoreError" && "reason" in error) {
      return error.reason === "Unavailable" ? answer(503, message, 5) : answer(502, message)
    }
    if (error._tag === "DatabaseError" || error._tag === "JobQueueError") return answer(503, message, 30)
  }
  console.error(Cause.pretty(cause))
  return c.json({ error: "internal", message: "internal error" }, 500)
}

/** Runs an API effect: its value through `ok`, a failure as the API's one error shape. */
const runner = <E>(runtime: ManagedRuntime.ManagedRuntime<ApiServices, E>) =>
  async <A>(c: Context, effect: Effect.Effect<A, unknown, ApiServices>, ok: (value: A) => Response | Promise<Response>) => {
    const exit = await runtime.runPromiseExit(effect)
    return Exit.isSuccess(exit) ? ok(exit.value) : failure(c, exit.cause)
  }

/**
 * tus uploads under `path` (`/v1/uploads` for API keys, `/portal/uploads` for the portal's
 * sessions), for the partner the caller has already authenticated: our checks first (names, sizes,
 * the delivery's state, the upload's owner), then tus's own handler on the untouched request.
 */
export const makeUploads = <E>(runtime: ManagedRuntime.ManagedRuntime<ApiServices, E>, path: string) => {
  const run = runner(runtime)
  // The key each checked creation request is for: tus asks for it with the same Request object.
  const keys = new WeakMap<Request, string>()
  const services = runtime.runPromise(
    Effect.gen(function*() {
      return { config: yield* PipelineConfig, store: yield* ObjectStore, api: yield* ApiConfig }
    })
  )
  const tus = services.then(({ config, store, api }) =>
    makeTusServer({
      path,
      s3: store.settings,
      incomingPrefix: config.incomingPrefix,
      stagingPrefix: config.stagingPrefix,
      maxFileBytes: api.maxFileBytes,
      keyOf: (request) => keys.get(request) ?? ""
    })
  )
  const create = (c: Context, partner: string) => {
    const metadata = tusMetadata(c.req.header("upload-metadata") ?? null)
    const length = Number(c.req.header("upload-length"))
    return run(
      c,
      Effect.gen(function*() {
        if (metadata === undefined) return yield* badRequest("Upload-Metadata is not tus metadata (key base64value, …)")
        const delivery = yield* decodeOr400(DeliveryName, metadata.delivery, "Upload-Metadata delivery")
        const name = yield* decodeOr400(FileName, metadata.filename, "Upload-Metadata filename")
        const key = yield* deliveryFolder(partner, delivery)
        const opened = yield* receiving(key)
        const bound = yield* sizeBound(opened.receiving, name)
        if (length > bound.bytes) {
          if (opened.created) yield* forgetOpened(key)
          return yield* new ApiError({ status: 413, reason: `Upload-Length is ${length} bytes: ${bound.says}` })
        }
        keys.set(c.req.raw, `${key.prefix}${name}`)
      }),
      async () => (await tus).handleWeb(c.req.raw)
    )
  }
  const resume = async (c: Context, partner: string) => {
    const { config } = await services
    const key = uploadIdCodec(config.incomingPrefix).fromUrl(c.req.param("id") ?? "")
    const names = key === undefined ? undefined : keyNames(key, config.incomingPrefix)
    if (names?._tag !== "Named" || key!.slice(names.prefix.length).includes("/")) {
      return c.json(errorBody(404, `no upload ${JSON.stringify(c.req.param("id"))}`), 404)
    }
    if (names.partner !== partner) {
      return c.json(errorBody(403, `upload ${JSON.stringify(c.req.param("id"))} belongs to another partner`), 403)
    }
    return (await tus).handleWeb(c.req.raw)
  }
  return { create, resume }
}

/**
 * The ingestion API, mounted under `/v1` of the HTTP app: every route but `/v1/openapi.json` takes
 * a partner API key (`Authorization: Bearer <key>`) and reaches that partner's deliveries only.
 */
export const makeApi = <E>(runtime: ManagedRuntime.ManagedRuntime<ApiServices, E>) => {
  const api = new Hono<Env>()
  const services = runtime.runPromise(
    Effect.gen(function*() {
      return { partners: yield* Partners, api: yield* ApiConfig }
    })
  )
  const limits = services.then(({ api }) => rateLimiter(api.ratePerMinute))
  const keyOf = (request: Request) => /^Bearer\s+(\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1]
  const uploads = makeUploads(runtime, "/v1/uploads")

  const run = runner(runtime)

  api.get("/openapi.json", (c) => c.json(openApiDocument))

  api.use("*", async (c, next) => {
    const { partners } = await services
    const key = keyOf(c.req.raw)
    const partner = key === undefined ? undefined : partners.partnerOfKey(key)
    if (partner === undefined) {
      c.header("www-authenticate", "Bearer")
      return c.json(
        errorBody(401, key === undefined ? "no API key: send \"Authorization: Bearer <key>\"" : "this API key is unknown or revoked"),
        401
      )
    }
    const wait = (await limits)(partner, Date.now())
    if (wait !== undefined) {
      c.header("retry-after", String(wait))
      return c.json(errorBody(429, `partner "${partner}" is over its rate of requests (LOADERS_API_RATE_LIMIT); try again in ${wait} s`), 429)
    }
    c.set("partner", partner)
    await next()
  })

  api.post(
    "/deliveries",
    bodyLimit({ maxSize: MAX_JSON_BYTES, onError: (c) => c.json(errorBody(413, `the request body is over ${MAX_JSON_BYTES} bytes`), 413) }),
    async (c) => {
      const body = await c.req.json<unknown>().then((value) => ({ value }), (error: unknown) => ({ error }))
      if ("error" in body) {
        return c.json(errorBody(400, `the request body is not JSON: ${body.error instanceof Error ? body.error.message : String(body.error)}`), 400)
      }
      return run(
        c,
        decodeOr400(OpenDelivery, body.value, "request body").pipe(Effect.flatMap((request) => openDelivery(c.get("partner"), request))),
        (opened) => c.json(opened, 201)
      )
    }
  )

  api.get("/deliveries", (c) => run(c, listDeliveries(c.get("partner")), (list) => c.json(list)))

  api.get("/deliveries/:delivery", (c) => run(c, pathDelivery(c).pipe(Effect.flatMap(deliveryStatus)), (status) => c.json(status)))

  api.put("/deliveries/:delivery/files/:name", (c) => {
    const length = c.req.header("content-length")
    const contentLength = length === undefined ? undefined : Number(length)
    const raw = c.req.raw.body
    const body = raw === null
      ? Stream.empty
      : Stream.fromReadableStream({
        evaluate: () => raw,
        onError: (error) => badRequest(`the request body broke off: ${error instanceof Error ? error.message : String(error)}`)
      })
    return run(
      c,
      Effect.gen(function*() {
        const key = yield* pathDelivery(c)
        const name = yield* decodeOr400(FileName, c.req.param("name"), "file name")
        return yield* putFile(key, name, body, contentLength !== undefined && Number.isSafeInteger(contentLength) ? contentLength : undefined)
      }),
      (stored) => c.json(stored, 201)
    )
  })

  api.post("/deliveries/:delivery/complete", (c) => run(c, pathDelivery(c).pipe(Effect.flatMap(completeDelivery)), (done) => c.json(done, 202)))

  api.get("/deliveries/:delivery/errors.csv", (c) => {
    const language = c.req.query("language")
    return run(
      c,
      Effect.gen(function*() {
        const key = yield* pathDelivery(c)
        if (language !== undefined && language !== "fr" && language !== "en") return yield* badRequest(`language must be "fr" or "en", got ${JSON.stringify(language)}`)
        return yield* Stream.toReadableStreamEffect(yield* errorsCsv(key, language))
      }),
      (csv) =>
        new Response(csv, {
          headers: {
            "content-type": "text/csv; charset=utf-8",
            "content-disposition": `attachment; filename="${encodeURIComponent(c.req.param("delivery"))}-errors.csv"`
          }
        })
    )
  })

  api.post("/uploads", (c) => uploads.create(c, c.get("partner")))
  // Hono serves HEAD through the GET route (the request tus sees is still the HEAD).
  api.on(["GET", "PATCH", "DELETE"], "/uploads/:id", (c) => uploads.resume(c, c.get("partner")))

  return api
}
