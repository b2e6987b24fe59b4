import { Effect, FiberSet, Layer } from "effect"
import { EmbeddedS3Events } from "../effects/EmbeddedS3.ts"
import { Webhook } from "./Webhook.ts"

/**
 * On the embedded defaults, `serve` takes its own embedded S3's object-created events as if S3 had
 * posted them to the webhook (same decoding, bucket and name checks, archive moves ignored), so a
 * file copied into the embedded bucket is processed with no event posted by hand. Nothing on a
 * bucket of the user's, whose events come through the webhook (or SQS). An event the queue cannot
 * take is logged: the reconciliation scan finds its folder later.
 */
export const EmbeddedS3TriggerLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const events = yield* Effect.serviceOption(EmbeddedS3Events)
    if (events._tag === "None") return
    const webhook = yield* Webhook
    const fibers = yield* FiberSet.make<unknown, never>()
    const run = yield* FiberSet.runtime(fibers)()
    const take = (body: unknown) =>
      webhook.accept(body).pipe(
        Effect.tap((result) =>
          result.kind === "events" && result.deliveries.length > 0
            ? Effect.logDebug(`embedded S3 event: ${result.deliveries.join(", ")} handed to the workers`)
            : Effect.void
        ),
        Effect.catch((error) => Effect.logWarning(`embedded S3 event not taken: ${error.reason}`))
      )
    yield* Effect.acquireRelease(
      Effect.sync(() => events.value.subscribe((event) => void run(take(event)))),
      (unsubscribe) => Effect.sync(unsubscribe)
    )
    yield* Effect.logInfo("serve takes the embedded S3's object-created events itself: no webhook to post")
  })
)
