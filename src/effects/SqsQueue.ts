import { DeleteMessageBatchCommand, ReceiveMessageCommand, SQSClient } from "@aws-sdk/client-sqs"
import { Config, Context, Data, Duration, Effect, Layer, Option } from "effect"

/** A message as received: what to read and what it takes to delete it. */
export interface SqsMessage {
  readonly id: string
  readonly body: string
  /** This receipt's handle: deleting needs the latest one. */
  readonly receiptHandle: string
  /** How many times the queue handed the message out, this time included. */
  readonly receiveCount: number
}

/** An SQS call failed (the queue unreachable, refused, or too slow to answer). */
export class SqsError extends Data.TaggedError("SqsError")<{
  readonly operation: string
  readonly queueUrl: string
  readonly reason: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return `SQS ${this.operation} on ${this.queueUrl} failed: ${this.reason}`
  }
}

/** How to reach the queue. */
export interface SqsSettings {
  readonly queueUrl: string
  /** An SQS-compatible server (a local one); AWS, from the queue URL, when absent. */
  readonly endpoint?: string | undefined
  /** The queue's region; from an AWS queue URL, else `AWS_REGION`, else `us-east-1`, when absent. */
  readonly region?: string | undefined
  /** Static credentials; the SDK's default provider chain when absent. */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined
  /** How long one receive waits for messages (SQS long polling, 0 to 20 s); 20 s when absent. */
  readonly wait?: Duration.Input | undefined
}

/** `https://sqs.eu-west-3.amazonaws.com/123456789012/loaders` → `eu-west-3`. */
export const regionOfQueueUrl = (queueUrl: string): string | undefined =>
  /^https?:\/\/sqs[.-]([a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\//.exec(queueUrl)?.[1]

/** The SDK's answer or fault, in a line a reader can act on. */
const reasonOf = (cause: unknown): string => {
  if (!(cause instanceof Error)) return String(cause)
  const code = "code" in cause && typeof cause.code === "string" ? cause.code : undefined
  return code && !cause.message.includes(code) ? `${cause.name}: ${cause.message} (${code})` : `${cause.name}: ${cause.message}`
}

/**
 * An SQS queue, as a consumer sees it: receive a batch (long polling), delete what was dealt with.
 * Only moves messages: what they mean is the caller's business. Retries are the caller's too (the
 * client makes one attempt per call), so that an outage is seen, and logged, once.
 */
export class SqsQueue extends Context.Service<SqsQueue, {
  readonly queueUrl: string
  /** Up to 10 messages, waiting for the first up to the long-poll time; none when none came. */
  readonly receive: Effect.Effect<ReadonlyArray<SqsMessage>, SqsError>
  /** Deletes `messages`; answers the ids the queue did not delete, each with its reason. */
  readonly delete: (messages: ReadonlyArray<SqsMessage>) => Effect.Effect<ReadonlyArray<{ readonly id: string; readonly reason: string }>, SqsError>
}>()("loaders/SqsQueue") {
  /** A queue with explicit settings. */
  static readonly layerWith = (settings: SqsSettings) => Layer.effect(SqsQueue, make(settings))

  /**
   * From the environment: `LOADERS_SQS_QUEUE_URL` (required), `LOADERS_SQS_ENDPOINT` (a local
   * SQS-compatible server), `AWS_REGION` (when the URL does not say), and credentials from the
   * SDK's default chain (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`, a profile, an instance role).
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const queueUrl = yield* Config.String("LOADERS_SQS_QUEUE_URL")
      const endpoint = yield* Config.option(Config.String("LOADERS_SQS_ENDPOINT"))
      const region = yield* Config.option(Config.String("AWS_REGION"))
      return SqsQueue.layerWith({
        queueUrl,
        endpoint: Option.getOrUndefined(endpoint),
        region: regionOfQueueUrl(queueUrl) ?? Option.getOrElse(region, () => "us-east-1")
      })
    })
  )
}

const make = Effect.fnUntraced(function*(settings: SqsSettings) {
  const { queueUrl } = settings
  const wait = Duration.fromInputUnsafe(settings.wait ?? Duration.seconds(20))
  const waitSeconds = Math.min(20, Math.max(0, Math.round(Duration.toSeconds(wait))))
  // A receive answers by the end of its long poll; past that plus some slack, the queue is not answering.
  const callTimeout = Duration.sum(Duration.seconds(waitSeconds), Duration.seconds(10))
  const client = yield* Effect.acquireRelease(
    Effect.sync(() =>
      new SQSClient({
        region: settings.region ?? regionOfQueueUrl(queueUrl) ?? "us-east-1",
        ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
        ...(settings.credentials ? { credentials: settings.credentials } : {}),
        maxAttempts: 1
      })
    ),
    (client) => Effect.sync(() => client.destroy())
  )

  /** One SDK call, aborted when interrupted (a stop during a long poll) or when it outlasts `callTimeout`. */
  const call = <A>(operation: string, run: (signal: AbortSignal) => Promise<A>) =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new SqsError({ operation, queueUrl, reason: reasonOf(cause), cause })
    }).pipe(
      Effect.timeoutOrElse({
        duration: callTimeout,
        orElse: () => Effect.fail(new SqsError({ operation, queueUrl, reason: `no answer within ${Duration.format(callTimeout)}` }))
      })
    )

  const receive = call("ReceiveMessage", (abortSignal) =>
    client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: waitSeconds,
        MessageSystemAttributeNames: ["ApproximateReceiveCount"]
      }),
      { abortSignal }
    )).pipe(
      Effect.map((output) =>
        (output.Messages ?? []).flatMap((message): Array<SqsMessage> =>
          message.MessageId && message.ReceiptHandle
            ? [{
              id: message.MessageId,
              body: message.Body ?? "",
              receiptHandle: message.ReceiptHandle,
              receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? "1")
            }]
            : []
        )
      ),
      Effect.withSpan("SqsQueue.receive", { attributes: { "messaging.system": "aws_sqs", "messaging.destination.name": queueUrl } })
    )

  const remove = Effect.fn("SqsQueue.delete")(function*(messages: ReadonlyArray<SqsMessage>) {
    const failed: Array<{ id: string; reason: string }> = []
    // DeleteMessageBatch takes 10 entries at most; entries are named by their index in the batch.
    for (let start = 0; start < messages.length; start += 10) {
      const batch = messages.slice(start, start + 10)
      const output = yield* call("DeleteMessageBatch", (abortSignal) =>
        client.send(
          new DeleteMessageBatchCommand({
            QueueUrl: queueUrl,
            Entries: batch.map((message, index) => ({ Id: String(index), ReceiptHandle: message.receiptHandle }))
          }),
          { abortSignal }
        ))
      for (const entry of output.Failed ?? []) {
        const message = batch[Number(entry.Id)]
        if (message) failed.push({ id: message.id, reason: `${entry.Code ?? "error"}: ${entry.Message ?? "no reason given"}` })
      }
    }
    return failed
  })

  return SqsQueue.of({ queueUrl, receive, delete: remove })
})
