import { Context, Data, Effect, Stream } from "effect"

/** Metadata of one stored object. */
export interface ObjectInfo {
  readonly key: string
  readonly size: number
  /** ETag without surrounding quotes. */
  readonly etag: string
  readonly lastModified: Date
}

/** A byte range to read: from `start` (inclusive) to the end of the object. */
export interface GetOptions {
  readonly start?: number
  /** Fail instead of reading a different version if the object changed since it was listed. */
  readonly ifMatch?: string
}

export interface PutOptions {
  readonly contentType?: string
}

/**
 * An object-store call failed. `reason` tells a caller what it can do about it: `NotFound` and
 * `PreconditionFailed` are answers, the others are faults (`Unavailable` is worth retrying).
 */
export class ObjectStoreError extends Data.TaggedError("ObjectStoreError")<{
  readonly operation: string
  readonly bucket: string
  readonly key: string
  readonly reason: "NotFound" | "PreconditionFailed" | "AccessDenied" | "Unavailable" | "Unknown"
  readonly cause?: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? `: ${this.cause.message}` : ""
    return `S3 ${this.operation} s3://${this.bucket}/${this.key} failed (${this.reason})${detail}`
  }
}

/**
 * The bucket deliveries live in. Only moves bytes: it knows nothing of deliveries or JSON.
 * Keys are plain UTF-8 strings (spaces, accents and `+` included); encoding is the client's job.
 */
export class ObjectStore extends Context.Service<ObjectStore, {
  readonly bucket: string
  /** Every object under `prefix`, in key order, fetched page by page as the stream is pulled. */
  readonly list: (prefix: string) => Stream.Stream<ObjectInfo, ObjectStoreError>
  /** The "folders" directly under `prefix` (keys up to the next `/`), each ending with `/`. */
  readonly listPrefixes: (prefix: string) => Effect.Effect<ReadonlyArray<string>, ObjectStoreError>
  readonly head: (key: string) => Effect.Effect<ObjectInfo, ObjectStoreError>
  /**
   * The object's bytes, pulled as the consumer asks for them. A connection that breaks midway is
   * resumed with a ranged GET from the byte reached (pinned to the first ETag), with retries.
   */
  readonly get: (key: string, options?: GetOptions) => Stream.Stream<Uint8Array, ObjectStoreError>
  readonly put: (
    key: string,
    body: string | Uint8Array,
    options?: PutOptions
  ) => Effect.Effect<{ readonly etag: string }, ObjectStoreError>
  /** Server-side copy inside the bucket. */
  readonly copy: (from: string, to: string) => Effect.Effect<{ readonly etag: string }, ObjectStoreError>
  readonly delete: (key: string) => Effect.Effect<void, ObjectStoreError>
}>()("loaders/ObjectStore") {}
