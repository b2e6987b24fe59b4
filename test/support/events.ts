/** S3 events as S3, MinIO and EventBridge post them, for keys written the way they encode them. */

/** Keys in S3 events: form-URL-encoded per segment, `+` for spaces, `/` kept. */
export const encodeEventKey = (key: string): string =>
  key.split("/").map((segment) => encodeURIComponent(segment).replace(/%20/g, "+")).join("/")

let sequence = 0x1000

const record = (bucket: string, key: string, eventName = "ObjectCreated:Put") => ({
  eventVersion: "2.1",
  eventSource: "aws:s3",
  awsRegion: "eu-west-3",
  eventTime: new Date().toISOString(),
  eventName,
  s3: {
    s3SchemaVersion: "1.0",
    bucket: { name: bucket, arn: `arn:aws:s3:::${bucket}` },
    object: { key: encodeEventKey(key), size: 10, eTag: "0123456789abcdef", sequencer: (sequence++).toString(16).toUpperCase().padStart(16, "0") }
  }
})

/** AWS's shape: `{"Records": [...]}`. */
export const awsEvent = (bucket: string, keys: ReadonlyArray<string>, eventName?: string) => ({
  Records: keys.map((key) => record(bucket, key, eventName))
})

/** MinIO's shape: the same records, with `EventName` and `Key` at the top. */
export const minioEvent = (bucket: string, key: string) => ({
  EventName: "s3:ObjectCreated:Put",
  Key: `${bucket}/${key}`,
  Records: [{ ...record(bucket, key, "s3:ObjectCreated:Put"), eventSource: "minio:s3" }]
})

export const testEvent = (bucket: string) => ({
  Service: "Amazon S3",
  Event: "s3:TestEvent",
  Time: new Date().toISOString(),
  Bucket: bucket,
  RequestId: "R",
  HostId: "H"
})

export const eventBridgeEvent = (bucket: string, key: string) => ({
  version: "0",
  id: crypto.randomUUID(),
  "detail-type": "Object Created",
  source: "aws.s3",
  account: "123456789012",
  time: new Date().toISOString(),
  region: "eu-west-3",
  resources: [`arn:aws:s3:::${bucket}`],
  detail: {
    version: "0",
    bucket: { name: bucket },
    object: { key: encodeEventKey(key), size: 10, etag: "0123456789abcdef", sequencer: (sequence++).toString(16) },
    "request-id": "R",
    requester: "123456789012",
    reason: "PutObject"
  }
})
