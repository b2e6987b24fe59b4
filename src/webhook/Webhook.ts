import { Context, Effect, Layer, Result, Schema } from "effect"
import { SnsMessage } from "../../schemas/events/S3Event.ts"
import { JobQueue } from "../effects/JobQueue.ts"
import { offerDelivery } from "../pipeline/deliveryJob.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { authenticate } from "./auth.ts"
import { BadRequest, Forbidden, PayloadTooLarge, type Unauthorized, Unavailable, type UpstreamFailed } from "./errors.ts"
import { type ObjectEvents, objectEvents } from "./events.ts"
import { makeEventFolders } from "./folders.ts"
import { makeSnsVerifier } from "./sns.ts"
import { WebhookConfig } from "./WebhookConfig.ts"

/** A request as the webhook sees it: web-standard headers and body, whatever the runtime. */
export interface WebhookRequest {
  readonly headers: Headers
  readonly body: ReadableStream<Uint8Array> | null
}

/** What the webhook did with a request. */
export type WebhookResult =
  | {
    readonly kind: "events"
    readonly accepted: number
    readonly ignored: number
    /** Why each refused record was refused (another bucket, a key breaking the name rule). */
    readonly refused: ReadonlyArray<string>
    readonly deliveries: ReadonlyArray<string>
  }
  | { readonly kind: "subscription"; readonly topic: string; readonly confirmed: boolean }

const decodeSns = Schema.decodeUnknownResult(SnsMessage)

/** Reads at most `limit` bytes of the body; more is `PayloadTooLarge`, before it is all read. */
const readBody = (request: WebhookRequest, limit: number) =>
  Effect.gen(function*() {
    const declared = Number(request.headers.get("content-length") ?? "0")
    if (declared > limit) return yield* new PayloadTooLarge({ limit })
    if (!request.body) return ""
    const reader = request.body.getReader()
    const chunks: Array<Uint8Array> = []
    let size = 0
    for (;;) {
      const { done, value } = yield* Effect.promise(() => reader.read())
      if (done) break
      size += value.length
      if (size > limit) {
        yield* Effect.promise(() => reader.cancel())
        return yield* new PayloadTooLarge({ limit })
      }
      chunks.push(value)
    }
    return new TextDecoder().decode(Buffer.concat(chunks))
  })

const parseJson = (text: string, what: string) =>
  Effect.try({
    try: (): unknown => JSON.parse(text),
    catch: (error) => new BadRequest({ reason: `${what} is not valid JSON: ${error instanceof Error ? error.message : String(error)}` })
  })

/**
 * The `POST /webhooks/s3` logic, runtime-neutral: authenticates (SNS signature, or the shared
 * secret), decodes the event, and hands each delivery folder it touches to the job queue. Events
 * outside the incoming prefix — the loaders' own archive moves among them — are acknowledged and
 * ignored, so archiving never triggers processing. Records naming another bucket than the store's,
 * or a key breaking the name rule, are refused: listed in the answer beside the accepted ones, or,
 * when nothing was queued, the request's 4xx reason.
 */
export class Webhook extends Context.Service<Webhook, {
  readonly handle: (
    request: WebhookRequest
  ) => Effect.Effect<WebhookResult, BadRequest | PayloadTooLarge | Unauthorized | Forbidden | UpstreamFailed | Unavailable>
  /**
   * An S3 event body from a source trusted without authentication (the embedded S3's own events),
   * decoded, checked and handed to the job queue exactly as `handle` does with a posted one.
   */
  readonly accept: (body: unknown) => Effect.Effect<WebhookResult, BadRequest | Forbidden | Unavailable>
}>()("loaders/Webhook") {
  static readonly layer = Layer.effect(
    Webhook,
    Effect.gen(function*() {
      const settings = yield* WebhookConfig
      const pipeline = yield* PipelineConfig
      const queue = yield* JobQueue
      const store = yield* ObjectStore
      const sns = makeSnsVerifier(settings)
      const folders = makeEventFolders(store.bucket, pipeline.incomingPrefix)

      const dispatch = Effect.fnUntraced(function*(events: ObjectEvents) {
        const found = folders(events)
        for (const reason of found.refused) yield* Effect.logWarning(`webhook: ${reason}`)
        if (found.deliveries.size === 0 && found.refused.length > 0) {
          const reason = found.refused.join("; ")
          // Another bucket is a sound request we refuse (403); a name breaking the rule is a bad one (400).
          return yield* (found.onlyOtherBuckets ? new Forbidden({ reason }) : new BadRequest({ reason }))
        }
        const span = yield* Effect.currentSpan.pipe(Effect.option)
        const origin = span._tag === "Some" ? { traceId: span.value.traceId, spanId: span.value.spanId } : undefined
        for (const key of found.deliveries.values()) {
          yield* offerDelivery(key, origin).pipe(
            Effect.provideService(JobQueue, queue),
            // The queue's reason already names the folder and the fault ("the job queue did not take …: …").
            Effect.mapError((error) => new Unavailable({ reason: error.reason }))
          )
        }
        found.remember()
        return {
          kind: "events",
          accepted: found.accepted,
          ignored: found.ignored,
          refused: found.refused,
          deliveries: [...found.deliveries.keys()]
        } as const
      })

      const handle = Effect.fn("Webhook.handle")(function*(request: WebhookRequest) {
        const text = yield* readBody(request, settings.maxBodyBytes)
        const body = yield* parseJson(text, "the body")
        const viaSns = request.headers.has("x-amz-sns-message-type") ||
          (typeof body === "object" && body !== null && "TopicArn" in body && "Type" in body)
        if (!viaSns) {
          yield* authenticate(settings, request.headers, text)
          const events = objectEvents(body)
          if (Result.isFailure(events)) return yield* events.failure
          return yield* dispatch(events.success)
        }
        const decoded = decodeSns(body)
        if (Result.isFailure(decoded)) return yield* new BadRequest({ reason: "not a valid SNS message (Type, MessageId, TopicArn, Message, Signature… expected)" })
        const message = decoded.success
        yield* sns.verify(message)
        if (message.Type === "SubscriptionConfirmation") {
          yield* sns.confirm(message)
          return { kind: "subscription", topic: message.TopicArn, confirmed: true } as const
        }
        if (message.Type === "UnsubscribeConfirmation") {
          return { kind: "subscription", topic: message.TopicArn, confirmed: false } as const
        }
        const inner = yield* parseJson(message.Message, "the SNS Message")
        const events = objectEvents(inner)
        if (Result.isFailure(events)) return yield* events.failure
        return yield* dispatch(events.success)
      })

      const accept = Effect.fn("Webhook.accept")(function*(body: unknown) {
        const events = objectEvents(body)
        if (Result.isFailure(events)) return yield* events.failure
        return yield* dispatch(events.success)
      })

      return Webhook.of({ handle, accept })
    })
  )
}
