import { Effect, Layer, Stream } from "effect"
import { createReadStream, statSync } from "node:fs"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { ObjectStore, ObjectStoreError } from "./ObjectStore.ts"

/** The bucket name local files are shown under (in messages only: nothing reaches S3). */
const BUCKET = "local"

/**
 * An `ObjectStore` that reads local files as if they were objects under given keys, and refuses
 * every write: what `npm run check` runs a delivery through, with no S3 at all. Keys map to paths;
 * a file's ETag is its size and modification time (nothing compares them across stores).
 */
export const localFiles = (files: ReadonlyMap<string, string>) => {
  const info = (key: string, path: string): ObjectInfo => {
    const stat = statSync(path)
    return { key, size: stat.size, etag: `${stat.size}-${stat.mtimeMs}`, lastModified: stat.mtime }
  }
  const refuse = (operation: string) => (key: string) =>
    new ObjectStoreError({ operation, bucket: BUCKET, key, reason: "AccessDenied", cause: new Error("local files are read only") })
  const pathOf = (operation: string, key: string): Effect.Effect<string, ObjectStoreError> => {
    const path = files.get(key)
    return path === undefined
      ? Effect.fail(new ObjectStoreError({ operation, bucket: BUCKET, key, reason: "NotFound" }))
      : Effect.succeed(path)
  }
  const read = (key: string, path: string) =>
    Effect.try({
      try: () => info(key, path),
      catch: (cause) => new ObjectStoreError({ operation: "HeadObject", bucket: BUCKET, key, reason: "NotFound", cause })
    })
  return Layer.succeed(ObjectStore, {
    bucket: BUCKET,
    list: (prefix) =>
      Stream.fromIterable([...files].filter(([key]) => key.startsWith(prefix)).sort(([a], [b]) => (a < b ? -1 : 1))).pipe(
        Stream.mapEffect(([key, path]) => read(key, path))
      ),
    head: (key) => pathOf("HeadObject", key).pipe(Effect.flatMap((path) => read(key, path))),
    get: (key, options = {}) =>
      Stream.unwrap(pathOf("GetObject", key).pipe(Effect.map((path) =>
        Stream.fromAsyncIterable(
          createReadStream(path, { start: options.start, end: options.end }) as AsyncIterable<Uint8Array>,
          (cause) => new ObjectStoreError({ operation: "GetObject", bucket: BUCKET, key, reason: "Unknown", cause })
        )
      ))),
    put: (key) => Effect.fail(refuse("PutObject")(key)),
    upload: (key) => Effect.fail(refuse("Upload")(key)),
    startMultipart: (key) => Effect.fail(refuse("CreateMultipartUpload")(key)),
    copy: (_, to) => Effect.fail(refuse("CopyObject")(to)),
    delete: (key) => Effect.fail(refuse("DeleteObject")(key)),
    presignGet: (key) => Effect.fail(refuse("PresignGet")(key)),
    presignPut: (key) => Effect.fail(refuse("PresignPut")(key)),
    multipart: {
      create: (key) => Effect.fail(refuse("CreateMultipartUpload")(key)),
      presignPart: (key) => Effect.fail(refuse("PresignPart")(key)),
      parts: (key) => Effect.fail(refuse("ListParts")(key)),
      complete: (key) => Effect.fail(refuse("CompleteMultipartUpload")(key)),
      abort: (key) => Effect.fail(refuse("AbortMultipartUpload")(key))
    },
    settings: { bucket: BUCKET }
  })
}
