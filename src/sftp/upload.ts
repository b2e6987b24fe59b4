import { Data, Effect, Fiber, Scope } from "effect"
import { type MultipartUpload, ObjectStore, type ObjectStoreError } from "../effects/ObjectStore.ts"

/** Bytes held for one S3 part: above S3's 5 MiB minimum; 10,000 parts make about 80 GiB at most. */
export const PART_SIZE = 8 * 1024 * 1024
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

const concat = (chunks: ReadonlyArray<Uint8Array>, length: number): Uint8Array => {
  const out = new Uint8Array(length)
  let at = 0
  for (const chunk of chunks) {
    out.set(chunk, at)
    at += chunk.length
  }
  return out
}

/** Starts streaming a file into `key`; the upload is aborted when the scope closes before `close` succeeded. */
export const startUpload = Effect.fnUntraced(function*(key: string) {
  const store = yield* ObjectStore
  const parts = yield* Effect.acquireRelease(Scope.make(), (scope, exit) => Scope.close(scope, exit))
  let chunks: Array<Uint8Array> = []
  let filled = 0
  let size = 0
  let partNumber = 0
  let multipart: MultipartUpload | undefined
  let sending: Fiber.Fiber<void, ObjectStoreError> | undefined
  let closed = false

  // The scope's end without a successful close: the parts are thrown away (an abort that fails is
  // only logged: S3 expires incomplete uploads by the bucket's lifecycle rule, and nothing is visible).
  yield* Effect.addFinalizer(() =>
    closed || multipart === undefined ? Effect.void : Effect.gen(function*() {
      if (sending) yield* Fiber.interrupt(sending)
      yield* multipart!.abort.pipe(
        Effect.catch((error) => Effect.logWarning(`${error.message}: the parts stay until the bucket's lifecycle rule expires them`))
      )
    })
  )

  const take = (): Uint8Array => {
    const part = concat(chunks, filled)
    chunks = []
    filled = 0
    return part
  }

  const sendPart = Effect.gen(function*() {
    if (sending) yield* Fiber.join(sending)
    if (partNumber >= MAX_PARTS) return yield* new UploadTooLarge({ key, bytes: size })
    multipart ??= yield* store.multipart(key)
    sending = yield* multipart.uploadPart(++partNumber, take()).pipe(Effect.forkIn(parts))
  })

  const upload: Upload = {
    key,
    size: () => size,
    write: (data) =>
      Effect.suspend(() => {
        // A copy: the SSH layer may reuse the packet buffer `data` points into.
        chunks.push(Uint8Array.from(data))
        filled += data.length
        size += data.length
        return filled >= PART_SIZE ? sendPart : Effect.void
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
