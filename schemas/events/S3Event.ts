import { Schema } from "effect"

/**
 * An S3 event notification as S3 and S3-compatible stores post it: AWS's `{"Records": [...]}`,
 * MinIO's `{"EventName", "Key", "Records": [...]}` (same records), and the `s3:TestEvent` S3 sends
 * when a notification is configured. Only the fields the loaders use are declared; others pass.
 */
export const S3EventRecord = Schema.Struct({
  eventName: Schema.String,
  eventTime: Schema.optionalKey(Schema.String),
  s3: Schema.Struct({
    bucket: Schema.Struct({ name: Schema.String }),
    object: Schema.Struct({
      key: Schema.String,
      size: Schema.optionalKey(Schema.Number),
      eTag: Schema.optionalKey(Schema.String),
      versionId: Schema.optionalKey(Schema.String),
      sequencer: Schema.optionalKey(Schema.String)
    })
  })
})

export const S3EventNotification = Schema.Struct({
  Records: Schema.Array(S3EventRecord)
})

export const S3TestEvent = Schema.Struct({
  Event: Schema.Literal("s3:TestEvent"),
  Bucket: Schema.optionalKey(Schema.String)
})

/** An Amazon EventBridge event for S3 (only `Object Created` starts work). */
export const EventBridgeEvent = Schema.Struct({
  "detail-type": Schema.String,
  source: Schema.String,
  detail: Schema.Struct({
    bucket: Schema.Struct({ name: Schema.String }),
    object: Schema.Struct({
      key: Schema.String,
      size: Schema.optionalKey(Schema.Number),
      etag: Schema.optionalKey(Schema.String),
      "version-id": Schema.optionalKey(Schema.String),
      sequencer: Schema.optionalKey(Schema.String)
    })
  })
})

/** An SNS HTTP(S) delivery: a notification wrapping an S3 event, or a subscription message. */
export const SnsMessage = Schema.Struct({
  Type: Schema.Literals(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]),
  MessageId: Schema.String,
  TopicArn: Schema.String,
  Message: Schema.String,
  Timestamp: Schema.String,
  SignatureVersion: Schema.Literals(["1", "2"]),
  Signature: Schema.String,
  SigningCertURL: Schema.String,
  Subject: Schema.optionalKey(Schema.String),
  SubscribeURL: Schema.optionalKey(Schema.String),
  Token: Schema.optionalKey(Schema.String)
})

export type SnsMessage = typeof SnsMessage.Type

/**
 * An SNS message as SNS writes it into a subscribed SQS queue (without raw message delivery): the
 * S3 event is the `Message` string. Only what a queue consumer reads is declared; the signature is
 * not, because the queue's access policy, not a signature, says who may write to it.
 */
export const SnsEnvelope = Schema.Struct({
  Type: Schema.Literals(["Notification", "SubscriptionConfirmation", "UnsubscribeConfirmation"]),
  TopicArn: Schema.String,
  Message: Schema.String,
  SubscribeURL: Schema.optionalKey(Schema.String)
})
