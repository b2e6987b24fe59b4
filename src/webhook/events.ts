import { Result, Schema } from "effect"
import { EventBridgeEvent, S3EventNotification, S3TestEvent } from "../../schemas/events/S3Event.ts"
import { BadRequest } from "./errors.ts"

/** An object that was created (or overwritten) in a bucket, as an event reports it. */
export interface ObjectCreated {
  readonly bucket: string
  /** The key, decoded exactly once. */
  readonly key: string
  readonly etag?: string
  /** Orders events about the same key (hex; longer or larger is newer). */
  readonly sequencer?: string
}

/** What a notification body says: the created objects, and how many other events it carried. */
export interface ObjectEvents {
  readonly created: ReadonlyArray<ObjectCreated>
  readonly ignored: number
}

/**
 * Keys in S3 notifications (and EventBridge) are URL-encoded with `+` for spaces: `relev%C3%A9+1%2B1`
 * is `relevé 1+1`. Decoded exactly once, so a literal `%2B` in a key survives.
 */
export const decodeEventKey = (raw: string): string => decodeURIComponent(raw.replace(/\+/g, " "))

const decodeNotification = Schema.decodeUnknownResult(S3EventNotification)
const decodeTest = Schema.decodeUnknownResult(S3TestEvent)
const decodeEventBridge = Schema.decodeUnknownResult(EventBridgeEvent)

const safeKey = (raw: string): string | undefined => {
  try {
    return decodeEventKey(raw)
  } catch {
    return undefined
  }
}

/**
 * The created objects an S3 notification (AWS or MinIO shape), an `s3:TestEvent`, or an
 * EventBridge event reports. Anything else is a `BadRequest` naming what was expected.
 */
export const objectEvents = (body: unknown): Result.Result<ObjectEvents, BadRequest> => {
  const notification = decodeNotification(body)
  if (Result.isSuccess(notification)) {
    const created: Array<ObjectCreated> = []
    let ignored = 0
    for (const record of notification.success.Records) {
      const key = safeKey(record.s3.object.key)
      if (key === undefined) return Result.fail(new BadRequest({ reason: `the object key "${record.s3.object.key}" is not validly URL-encoded` }))
      if (!record.eventName.includes("ObjectCreated")) {
        ignored++
        continue
      }
      const { eTag, sequencer } = record.s3.object
      created.push({
        bucket: record.s3.bucket.name,
        key,
        ...(eTag ? { etag: eTag.replaceAll("\"", "") } : {}),
        ...(sequencer ? { sequencer } : {})
      })
    }
    return Result.succeed({ created, ignored })
  }
  if (Result.isSuccess(decodeTest(body))) return Result.succeed({ created: [], ignored: 1 })
  const bridged = decodeEventBridge(body)
  if (Result.isSuccess(bridged)) {
    const event = bridged.success
    if (event["detail-type"] !== "Object Created") return Result.succeed({ created: [], ignored: 1 })
    const key = safeKey(event.detail.object.key)
    if (key === undefined) return Result.fail(new BadRequest({ reason: `the object key "${event.detail.object.key}" is not validly URL-encoded` }))
    const { etag, sequencer } = event.detail.object
    return Result.succeed({
      created: [{ bucket: event.detail.bucket.name, key, ...(etag ? { etag } : {}), ...(sequencer ? { sequencer } : {}) }],
      ignored: 0
    })
  }
  return Result.fail(
    new BadRequest({
      reason: "expected an S3 event notification (Records[]), an s3:TestEvent, an EventBridge S3 event or an SNS message"
    })
  )
}

/** Whether sequencer `a` is newer than `b`: the greater hexadecimal value is the later event. */
export const newerSequencer = (a: string, b: string): boolean => {
  const width = Math.max(a.length, b.length)
  return a.padStart(width, "0").toUpperCase() > b.padStart(width, "0").toUpperCase()
}
