import { describe, expect, test } from "bun:test"
import { Result } from "effect"
import { messageEvents } from "../../src/sqs/messageEvents.ts"
import { awsEvent, testEvent } from "../support/events.ts"

/** SNS's envelope as SNS writes it into a subscribed queue (raw message delivery off). */
const envelope = (type: string, message: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    Type: type,
    MessageId: "m-1",
    TopicArn: "arn:aws:sns:eu-west-3:123456789012:loaders",
    Subject: "Amazon S3 Notification",
    Message: message,
    Timestamp: "2026-12-01T10:00:00.000Z",
    SignatureVersion: "1",
    Signature: "c2ln",
    SigningCertURL: "https://sns.eu-west-3.amazonaws.com/SimpleNotificationService-x.pem",
    ...extra
  })

const created = (body: string) => {
  const decoded = messageEvents(body)
  if (Result.isFailure(decoded)) throw new Error(decoded.failure.reason)
  if (decoded.success._tag !== "Events") throw new Error(`not events: ${decoded.success._tag}`)
  return decoded.success.events
}

describe("messageEvents (SQS bodies)", () => {
  test("an S3 notification, directly or in SNS's envelope, gives the same created objects; the test event none", () => {
    const event = JSON.stringify(awsEvent("loaders", ["incoming/acme/d1/a b.json"]))
    expect(created(event).created.map((o) => o.key)).toEqual(["incoming/acme/d1/a b.json"])
    expect(created(envelope("Notification", event))).toEqual(created(event))
    expect(created(envelope("Notification", JSON.stringify(testEvent("loaders"))))).toEqual({ created: [], ignored: 1 })
  })

  test("SNS subscription messages are told apart, with their URL", () => {
    const decoded = messageEvents(envelope("SubscriptionConfirmation", "confirm", { SubscribeURL: "https://sns.example/confirm", Token: "t" }))
    expect(Result.isSuccess(decoded) && decoded.success).toEqual({
      _tag: "Subscription",
      type: "SubscriptionConfirmation",
      topic: "arn:aws:sns:eu-west-3:123456789012:loaders",
      subscribeUrl: "https://sns.example/confirm"
    })
  })

  test("bodies that are not S3 events fail with a reason saying where", () => {
    const reason = (body: string) => {
      const decoded = messageEvents(body)
      return Result.isFailure(decoded) ? decoded.failure.reason : "decoded"
    }
    expect(reason("{not json")).toContain("the message body is not valid JSON")
    expect(reason(JSON.stringify({ hello: "world" }))).toContain("expected an S3 event notification")
    expect(reason(envelope("Notification", "{oops"))).toContain("the SNS Message of topic arn:aws:sns:eu-west-3:123456789012:loaders is not valid JSON")
    expect(reason(envelope("Notification", JSON.stringify({ Records: [{ eventName: "ObjectCreated:Put", s3: { bucket: { name: "b" }, object: { key: "%E0" } } }] }))))
      .toContain("not validly URL-encoded")
  })
})
