import { Data, Effect, Fiber, Scope } from "effect"
import { type MultipartUpload, ObjectStore, type ObjectStoreError } from "../effects/ObjectStore.ts"

/**
 * Bytes held for one S3 part: S3's minimum, so that memory stays low (`npm run bench:sftp`); its
 * 10,000 parts make files of up to about 48 GiB.
 */
export const PART_SIZE = 5 * 1024 * 1024
const MAX_PARTS = 10_000

/** The file outgrew what one S3 object written in parts of `PART_SIZE` can hold. */
export class UploadTooLarge extends Data.TaggedError("UploadTooLarge")<{ readonly key: string; readonly bytes: number }> {
  override get message(): string {
    return `${this.key} would be larger than ${MAX_PARTS} parts of ${PART_SIZE / 1024 / 1024} MiB`
  }
}

/**
 * A file being streamed into the bucket as it arrives. Nothing is visible under its key until
 * `close`: small files are one PUT then, larger ones a multipart upload completed then; `abort`
 * (or the scope closing without `close`) throws the parts away. Memory stays at about two parts
 * whatever the size: one being sent, one filling; a `write` that fills a part while the previous
 * one is still being sent waits for it, which is how a slow store slows the sender.
 */
export interface Upload {
  readonly key: string
  /** Bytes taken so far: where the next write must start. */
  readonly size: () => number
  readonly write: (data: Uint8Array) => Effect.Effect<void, ObjectStoreError | UploadTooLarge>
  /** Sends what is left and makes the object visible; answers its size in bytes. */
  readonly close: Effect.Effect<number, ObjectStoreError>
}

/** Starts streaming a file into `key`; the upload is aborted when the scope closes before `close` succeeded. */
export const startUpload = Effect.fnUntraced(function*(key: string) {
  const store = yield* ObjectStore
  const parts = yield* Effect.acquireRelease(Scope.make(), (scope, exit) => Scope.close(scope, exit))
  // Two part buffers, reused: one filling while the other is being sent. Copying the writes into
  // them makes no garbage per write, which kept the process's peak well above two parts.
  const buffers: Array<Uint8Array> = []
  let current = 0
  let filled = 0
  let size = 0
  let partNumber = 0
  let multipart: MultipartUpload | undefined
  let sending: Fiber.Fiber<void, ObjectStoreError> | undefined
  let closed = false

  // The scope's end without a successful close: the parts are thrown away. An abort that fails
  // (s3rver has none) is only logged: nothing is visible either way, and on S3 a lifecycle rule
  // (AbortIncompleteMultipartUpload) removes what is left.
  yield* Effect.addFinalizer(() => {
    const started = multipart
    if (closed || started === undefined) return Effect.void
    return Effect.gen(function*() {
      if (sending) yield* Fiber.interrupt(sending)
      yield* started.abort.pipe(
        Effect.catch((error) => Effect.logWarning(`${error.message}: nothing is visible, but the parts sent stay in the bucket's incomplete uploads`))
      )
    })
  })

  const buffer = () => (buffers[current] ??= new Uint8Array(PART_SIZE))

  /** The bytes of the part filled so far; the next writes go into the other buffer. */
  const take = (): Uint8Array => {
    const part = buffer().subarray(0, filled)
    current = 1 - current
    filled = 0
    return part
  }

  const sendPart = Effect.gen(function*() {
    if (sending) yield* Fiber.join(sending)
    if (partNumber >= MAX_PARTS) return yield* new UploadTooLarge({ key, bytes: size })
    multipart ??= yield* store.startMultipart(key)
    const part = take()
    const number = ++partNumber
    sending = yield* multipart.uploadPart(number, part).pipe(
      Effect.tap(() => Effect.logDebug(`${key}: part ${number} sent (${part.length} bytes)`)),
      Effect.forkIn(parts)
    )
  })

  const upload: Upload = {
    key,
    size: () => size,
    write: (data) =>
      Effect.gen(function*() {
        let at = 0
        while (at < data.length) {
          const n = Math.min(PART_SIZE - filled, data.length - at)
          buffer().set(data.subarray(at, at + n), filled)
          filled += n
          at += n
          size += n
          // The other buffer is free again only once its part is sent: `sendPart` waits for that.
          if (filled === PART_SIZE) yield* sendPart
        }
      }),
    close: Effect.gen(function*() {
      if (sending) yield* Fiber.join(sending)
      if (multipart === undefined) {
        yield* store.put(key, take())
      } else {
        if (filled > 0) yield* multipart.uploadPart(++partNumber, take())
        yield* multipart.complete
      }
      closed = true
      return size
    })
  }
  return upload
})
