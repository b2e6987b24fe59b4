import { Data, Effect } from "effect"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { type DeliveryFolder, MANIFEST, nameInFolder } from "../domain/DeliveryFolder.ts"

/** A copy in the archive does not match its source, so the source is kept. */
export class ArchiveError extends Data.TaggedError("ArchiveError")<{
  readonly source: string
  readonly destination: string
  readonly reason: string
}> {
  override get message(): string {
    return `archiving ${this.source} to ${this.destination} failed: ${this.reason}`
  }
}

/**
 * First half of a move: copies every object of the folder under `destination` and checks each
 * copy's size. Nothing is deleted, so an interruption loses nothing.
 */
export const copyFolder = Effect.fn("Archive.copy")(function*(folder: DeliveryFolder, destination: string) {
  const store = yield* ObjectStore
  yield* Effect.forEach(
    folder.objects,
    (object) =>
      Effect.gen(function*() {
        const to = destination + nameInFolder(folder.key, object.key)
        yield* store.copy(object.key, to)
        const copy = yield* store.head(to)
        if (copy.size !== object.size) {
          return yield* new ArchiveError({
            source: object.key,
            destination: to,
            reason: `copy has ${copy.size} bytes, source ${object.size}`
          })
        }
      }),
    { concurrency: 4, discard: true }
  )
})

/**
 * Second half of a move, once the copies are verified and the ledger knows the outcome: deletes the
 * sources. The manifest goes first, so an interrupted delete never leaves a folder that looks
 * ready with files missing; the ledger recognises what is left as a leftover.
 */
export const deleteFolder = Effect.fn("Archive.delete")(function*(folder: DeliveryFolder) {
  const store = yield* ObjectStore
  const isManifest = (key: string) => nameInFolder(folder.key, key) === MANIFEST
  const manifest = folder.objects.filter((o) => isManifest(o.key))
  const rest = folder.objects.filter((o) => !isManifest(o.key))
  yield* Effect.forEach(manifest, (o) => store.delete(o.key), { discard: true })
  yield* Effect.forEach(rest, (o) => store.delete(o.key), { concurrency: 4, discard: true })
})
