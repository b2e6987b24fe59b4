import { Config, Data, Effect, Layer } from "effect"
import type { Dataset } from "../../schemas/Dataset.ts"
import { LakeSink, type LakeSettings } from "../effects/lake/LakeSink.ts"
import { PostgresSink } from "../effects/postgres/PostgresSink.ts"
import { Sink } from "../effects/Sink.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"

/** The destinations a dataset's rows can go to: PostgreSQL (or PGlite) tables, the S3 lake. */
export type SinkName = "postgres" | "s3"

const SINK_NAMES: ReadonlyArray<SinkName> = ["postgres", "s3"]

/** `LOADERS_SINKS` names a dataset or a destination that does not exist. */
export class SinkChoiceError extends Data.TaggedError("SinkChoiceError")<{ readonly value: string; readonly reason: string }> {
  override get message(): string {
    return `LOADERS_SINKS=${JSON.stringify(this.value)} is refused: ${this.reason}. Expected a comma-separated list of ` +
      `"<sinks>" (every dataset) and "<dataset>=<sinks>" entries, <sinks> being postgres, s3 or postgres+s3`
  }
}

/**
 * Each dataset's destinations from `LOADERS_SINKS`, e.g. `postgres` (the default),
 * `postgres+s3`, or `postgres,transactions=postgres+s3`: an entry without a dataset sets every
 * dataset not named.
 */
export const chooseSinks = (value: string, datasets: ReadonlyArray<Dataset>) =>
  Effect.gen(function*() {
    const fail = (reason: string) => new SinkChoiceError({ value, reason })
    const names = (text: string) =>
      Effect.forEach(text.split("+").map((s) => s.trim()), (name) =>
        SINK_NAMES.includes(name as SinkName)
          ? Effect.succeed(name as SinkName)
          : Effect.fail(fail(`"${name}" is not a destination (${SINK_NAMES.join(", ")})`)))
    let fallback: ReadonlyArray<SinkName> = ["postgres"]
    const chosen = new Map<string, ReadonlyArray<SinkName>>()
    for (const entry of value.split(",").map((e) => e.trim()).filter((e) => e !== "")) {
      const [dataset, sinks] = entry.includes("=") ? entry.split("=", 2) as [string, string] : [undefined, entry]
      if (dataset === undefined) fallback = yield* names(sinks)
      else if (!datasets.some((d) => d.name === dataset.trim())) {
        return yield* fail(`"${dataset.trim()}" is not a dataset (${datasets.map((d) => d.name).join(", ")})`)
      } else chosen.set(dataset.trim(), yield* names(sinks))
    }
    return (dataset: Dataset): ReadonlyArray<SinkName> => chosen.get(dataset.name) ?? fallback
  })

/**
 * The pipeline's destinations: `sinks` as `LOADERS_SINKS` reads, the lake written as `lake` says
 * when a dataset goes there. PostgreSQL comes first: the lake takes the columns it fills from
 * other tables and the repeats it refuses, so both hold the same rows; the tables of every dataset
 * are kept, since other datasets' enrichments read them.
 */
export const sinksLayerWith = (datasets: ReadonlyArray<Dataset>, sinks: string, lake: Omit<LakeSettings, "stagingPrefix">) =>
  Layer.effect(
    Sink,
    Effect.gen(function*() {
      const sinksOf = yield* chooseSinks(sinks, datasets)
      const takes = (name: SinkName) => (dataset: Dataset) => sinksOf(dataset).includes(name)
      const postgres = { sink: yield* PostgresSink.make(datasets), takes: takes("postgres") }
      if (!datasets.some(takes("s3"))) return postgres.sink
      const { stagingPrefix } = yield* PipelineConfig
      return Sink.all([postgres, { sink: yield* LakeSink.make({ ...lake, stagingPrefix }), takes: takes("s3") }])
    })
  )

/** The pipeline's destinations from `LOADERS_SINKS` and `LOADERS_LAKE_*` (see `sinksLayerWith`). */
export const sinksLayer = (datasets: ReadonlyArray<Dataset>) =>
  Layer.unwrap(Effect.gen(function*() {
    const sinks = yield* Config.String("LOADERS_SINKS").pipe(Config.withDefault("postgres"))
    return sinksLayerWith(datasets, sinks, yield* LakeSink.settings)
  }))
