import { Data, Result, Schema } from "effect"
import { SnsEnvelope } from "../../schemas/events/S3Event.ts"
import { type ObjectEvents, objectEvents } from "../webhook/events.ts"

/** An SQS message body that is not an event the loaders understand; it stays for the queue's redrive policy. */
export class MalformedMessage extends Data.TaggedError("MalformedMessage")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** What an SQS message carries. */
export type MessageEvents =
  /** S3 events, written to the queue by S3 itself, by EventBridge, or by SNS (raw or in its envelope). */
  | { readonly _tag: "Events"; readonly events: ObjectEvents }
  /** SNS asking (or telling) about a subscription of this queue to a topic of another account. */
  | {
    readonly _tag: "Subscription"
    readonly type: "SubscriptionConfirmation" | "UnsubscribeConfirmation"
    readonly topic: string
    readonly subscribeUrl?: string
  }

const decodeEnvelope = Schema.decodeUnknownResult(SnsEnvelope)

const parse = (text: string, what: string): Result.Result<unknown, MalformedMessage> => {
  try {
    return Result.succeed(JSON.parse(text))
  } catch (error) {
    return Result.fail(new MalformedMessage({ reason: `${what} is not valid JSON: ${error instanceof Error ? error.message : String(error)}` }))
  }
}

const events = (body: unknown, what: string): Result.Result<MessageEvents, MalformedMessage> => {
  const decoded = objectEvents(body)
  return Result.isSuccess(decoded)
    ? Result.succeed({ _tag: "Events", events: decoded.success })
    : Result.fail(new MalformedMessage({ reason: `${what}: ${decoded.failure.reason}` }))
}

/**
 * The S3 events an SQS message body holds: an S3 event notification (S3 → SQS), an EventBridge
 * event, or either wrapped in SNS's envelope (S3 → SNS → SQS without raw delivery); S3's test event
 * is an event with nothing created. Decoded by the webhook's own decoder, so both triggers read
 * events alike.
 */
export const messageEvents = (body: string): Result.Result<MessageEvents, MalformedMessage> => {
  const json = parse(body, "the message body")
  if (Result.isFailure(json)) return Result.fail(json.failure)
  const envelope = decodeEnvelope(json.success)
  if (Result.isFailure(envelope)) return events(json.success, "the message body")
  const sns = envelope.success
  if (sns.Type !== "Notification") {
    return Result.succeed({
      _tag: "Subscription",
      type: sns.Type,
      topic: sns.TopicArn,
      ...(sns.SubscribeURL ? { subscribeUrl: sns.SubscribeURL } : {})
    })
  }
  const inner = parse(sns.Message, `the SNS Message of topic ${sns.TopicArn}`)
  if (Result.isFailure(inner)) return Result.fail(inner.failure)
  return events(inner.success, `the SNS Message of topic ${sns.TopicArn}`)
}
