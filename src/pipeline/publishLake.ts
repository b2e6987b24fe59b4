import { Effect, Schema, Stream } from "effect"
import { LakeManifest, LakePublication } from "../../schemas/LakeManifest.ts"
import { type DeliveryKey, runFolder, stagingFolder } from "../domain/DeliveryFolder.ts"
import { lakeStaging, PUBLICATION, stagedPart } from "../domain/LakeLayout.ts"
import { ObjectStore, type ObjectStoreError } from "../effects/ObjectStore.ts"
import { PipelineConfig } from "./PipelineConfig.ts"

const notFound = (error: ObjectStoreError) => error.reason === "NotFound"

/** A JSON object we wrote ourselves, or undefined when it is not there. */
const readJson = <S extends Schema.Top>(schema: S, key: string) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const text = yield* store.get(key).pipe(Stream.decodeText, Stream.mkString)
    return yield* Schema.decodeUnknownEffect(Schema.fromJsonString(schema))(text).pipe(Effect.orDie)
  }).pipe(Effect.catchIf(notFound, () => Effect.succeed(undefined)))

/**
 * Makes a committed run's lake parts visible, dataset by dataset: the parts of the delivery's
 * previous publication go first, then the run's parts are copied from its staging folder to their
 * keys, and last the dataset's manifest names them — so a reader never sees two runs of a delivery
 * at once (for a moment, neither). Every step may be repeated: a run that died publishing is
 * finished by the next one, and a manifest already naming this run is not undone. Answers what
 * was published (nothing when the run staged no lake parts).
 */
export const publishLake = Effect.fnUntraced(function*(key: DeliveryKey, runId: string) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const staging = lakeStaging(key, config.stagingPrefix, runId)
  const publication = yield* readJson(LakePublication, staging + PUBLICATION)
  if (publication === undefined) return []
  for (const { key: at, manifest } of publication.manifests) {
    const previous = yield* readJson(LakeManifest, at)
    if (previous !== undefined && previous.runId !== runId) {
      yield* Effect.forEach(previous.parts, (part) => store.delete(part.key), { discard: true })
    }
    yield* Effect.forEach(manifest.parts, (part) => store.copy(stagedPart(staging, part.key), part.key), { discard: true, concurrency: 4 })
    yield* store.put(at, JSON.stringify(manifest, null, 2), { contentType: "application/json" })
  }
  return publication.manifests
}, Effect.withSpan("publishLake"))

/** Deletes what the run kept in its staging folder, the publication list first (see `publishLake`). */
export const sweepRunStaging = Effect.fnUntraced(function*(key: DeliveryKey, runId: string) {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  yield* store.delete(lakeStaging(key, config.stagingPrefix, runId) + PUBLICATION)
  yield* store.list(`${stagingFolder(key, config.stagingPrefix)}${runFolder(runId)}`).pipe(
    Stream.runForEach((object) => store.delete(object.key))
  )
})
