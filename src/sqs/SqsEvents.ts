import { Cause, Config, Duration, Effect, Layer, Option, Result } from "effect"
import { type JobQueueError, JobQueue } from "../effects/JobQueue.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { type SqsError, type SqsMessage, SqsQueue } from "../effects/SqsQueue.ts"
import { offerDelivery } from "../pipeline/deliveryJob.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { makeEventFolders } from "../webhook/folders.ts"
import { messageEvents } from "./messageEvents.ts"

/** The wait before the first retry of an outage; it doubles on each failed try, up to `RETRY_MAX`. */
const RETRY_FIRST = Duration.seconds(1)
const RETRY_MAX = Duration.seconds(30)
/** Messages whose problem was logged already (ids), so a redelivered one is not logged again; bounded. */
const REPORTED_KEPT = 10_000

/** What became of one message: delete it, leave it to the queue, or stop: the job queue is down. */
type Verdict =
  | { readonly _tag: "Delete" }
  | { readonly _tag: "Leave" }
  | { readonly _tag: "JobQueueDown"; readonly error: JobQueueError }

/**
 * Long-polls the SQS queue for S3 events until interrupted, and hands each delivery folder they
 * touch to the workers (`offerDelivery`), deleting each message as soon as its folders' jobs are
 * written: a message is never held for the length of a load, so its visibility timeout never runs
 * out during one. Events are sorted as the webhook sorts them (same bucket, name rule and repeat
 * checks). What is left in the queue, SQS hands out again after its visibility timeout:
 * - a message that is not an S3 event, or refers only to refused objects: logged once, and left for
 *   the queue's redrive policy to move to its dead-letter queue after `maxReceiveCount` receives;
 * - a message whose jobs the job queue could not take: polling pauses with backoff until it can.
 * An unreachable SQS is retried with backoff (1 s doubling to 30 s); each outage is logged once,
 * when it starts, and once when it ends.
 */
export const poll = Effect.gen(function*() {
  const sqs = yield* SqsQueue
  const queue = yield* JobQueue
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const folders = makeEventFolders(store.bucket, config.incomingPrefix)
  const reported = new Set<string>()
  let outage: { readonly what: string; tries: number } | undefined

  /** Logs `problem` of `message` the first time only: a message left in the queue comes back. */
  const reportOnce = (message: SqsMessage, problem: string) => {
    if (reported.has(message.id)) return Effect.void
    reported.add(message.id)
    if (reported.size > REPORTED_KEPT) reported.delete(reported.values().next().value!)
    return Effect.logError(
      `SQS message ${message.id} (received ${message.receiveCount} time${message.receiveCount === 1 ? "" : "s"}) ${problem}; ` +
        `left in the queue: its redrive policy moves it to the dead-letter queue after maxReceiveCount receives`
    )
  }

  /** A failed try: logged when an outage starts, then a growing pause before the next one. */
  const failed = Effect.fnUntraced(function*(what: string, error: SqsError | JobQueueError) {
    if (outage === undefined || outage.what !== what) {
      outage = { what, tries: 0 }
      yield* Effect.logWarning(`SQS: ${error.message}; retrying every ${Duration.format(RETRY_FIRST)} to ${Duration.format(RETRY_MAX)} until it answers`)
    }
    outage.tries++
    yield* Effect.sleep(Duration.min(RETRY_MAX, Duration.times(RETRY_FIRST, 2 ** Math.min(outage.tries - 1, 10))))
  })

  /** `what` answered: the end of its outage, if it had one, is logged. */
  const recovered = (what: string) =>
    Effect.suspend(() => {
      if (outage?.what !== what) return Effect.void
      const { tries } = outage
      outage = undefined
      return Effect.logInfo(`SQS: ${what} answers again, after ${tries} failed tr${tries === 1 ? "y" : "ies"}`)
    })

  /** Decodes `message` and writes the jobs of its folders, skipping those `offered` already in this batch. */
  const handle = Effect.fn("SqsEvents.message")(function*(message: SqsMessage, offered: Set<string>) {
    yield* Effect.annotateCurrentSpan({ "messaging.message.id": message.id, "messaging.sqs.receive_count": message.receiveCount })
    const decoded = messageEvents(message.body)
    if (Result.isFailure(decoded)) {
      yield* reportOnce(message, `is not an S3 event: ${decoded.failure.reason}`)
      return { _tag: "Leave" } satisfies Verdict
    }
    if (decoded.success._tag === "Subscription") {
      const { type, topic, subscribeUrl } = decoded.success
      yield* type === "SubscriptionConfirmation"
        ? Effect.logWarning(
          `SQS: SNS topic ${topic} asks to confirm its subscription of this queue; confirm it with ` +
            `aws sns confirm-subscription (token in the URL) or by visiting ${subscribeUrl ?? "its SubscribeURL"}`
        )
        : Effect.logInfo(`SQS: SNS topic ${topic} unsubscribed this queue`)
      return { _tag: "Delete" } satisfies Verdict
    }
    const found = folders(decoded.success.events)
    if (found.deliveries.size === 0 && found.refused.length > 0) {
      yield* reportOnce(message, `names no object this service loads: ${found.refused.join("; ")}`)
      return { _tag: "Leave" } satisfies Verdict
    }
    for (const reason of found.refused) yield* Effect.logWarning(`SQS message ${message.id}: ${reason}`)
    const span = yield* Effect.currentSpan.pipe(Effect.option)
    const origin = Option.isSome(span) ? { traceId: span.value.traceId, spanId: span.value.spanId } : undefined
    for (const key of found.deliveries.values()) {
      if (offered.has(key.prefix)) continue
      const written = yield* offerDelivery(key, origin).pipe(Effect.provideService(JobQueue, queue), Effect.result)
      if (Result.isFailure(written)) return { _tag: "JobQueueDown", error: written.failure } satisfies Verdict
      offered.add(key.prefix)
    }
    found.remember()
    yield* Effect.logDebug(
      `SQS message ${message.id}: ${found.accepted} created object(s) in ${[...found.deliveries.keys()].join(", ") || "no delivery"}, ${found.ignored} ignored`
    )
    return { _tag: "Delete" } satisfies Verdict
  })

  /** One batch: jobs written, then the messages they came from deleted at once. */
  const batch = Effect.fnUntraced(function*(messages: ReadonlyArray<SqsMessage>) {
    const offered = new Set<string>()
    const done: Array<SqsMessage> = []
    let down: JobQueueError | undefined
    for (const message of messages) {
      const verdict = yield* handle(message, offered)
      if (verdict._tag === "Delete") done.push(message)
      if (verdict._tag === "JobQueueDown") {
        down = verdict.error
        break
      }
    }
    if (done.length > 0) {
      const deleted = yield* sqs.delete(done).pipe(Effect.result)
      if (Result.isFailure(deleted)) return yield* failed("the queue", deleted.failure)
      yield* recovered("the queue")
      // Left undeleted, a message comes back and its folders are offered again: coalesced, never run twice.
      for (const { id, reason } of deleted.success) yield* Effect.logWarning(`SQS message ${id} could not be deleted (${reason}); it will come back`)
    }
    if (down) return yield* failed("the job queue", down)
    yield* recovered("the job queue")
  })

  yield* Effect.logInfo(`SQS: taking S3 events from ${sqs.queueUrl}`)
  for (;;) {
    // While the job queue is down, receiving would only hand messages out again and again, and
    // each time counts towards maxReceiveCount: sound messages would end in the dead-letter queue.
    if (outage?.what === "the job queue") {
      const counted = yield* queue.counts.pipe(Effect.result)
      if (Result.isFailure(counted)) {
        yield* failed("the job queue", counted.failure)
        continue
      }
      yield* recovered("the job queue")
    }
    const received = yield* sqs.receive.pipe(Effect.result)
    if (Result.isFailure(received)) {
      yield* failed("the queue", received.failure)
      continue
    }
    yield* recovered("the queue")
    if (received.success.length > 0) yield* batch(received.success)
  }
})

/** The poller, for as long as the layer lives; a poller that stops for good is logged. */
export const layer = Layer.effectDiscard(
  Effect.forkScoped(poll.pipe(Effect.tapCause((cause) =>
    Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.logError(`SQS: polling stopped: ${Cause.squash(cause)}`)
  )))
)

/** The poller on the queue of `LOADERS_SQS_QUEUE_URL` when it is set; nothing otherwise. */
export const layerConfig = Layer.unwrap(
  Effect.gen(function*() {
    const queueUrl = yield* Config.option(Config.String("LOADERS_SQS_QUEUE_URL"))
    return Option.isSome(queueUrl) ? layer.pipe(Layer.provide(SqsQueue.layer)) : Layer.empty
  })
)
