/**
 * Runs one delivery through `processDelivery` in a process of its own, so the benchmark measures
 * the pipeline's memory and nothing else, and prints a JSON line: the report's status, totals and
 * rows (inserted, updated, unchanged per dataset), seconds, CPU seconds (and the system's share),
 * the main thread's seconds on a core and waiting for one, page faults, peak RSS (VmHWM). Configured by environment: BENCH_S3_ENDPOINT, BENCH_BUCKET, BENCH_PREFIX, DATABASE_URL,
 * LOADERS_BATCH_SIZE.
 */
import { Duration, Effect, Layer, Redacted } from "effect"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { TelemetryLayer } from "../otel/telemetry.ts"
import { datasets } from "../schemas/registry.ts"
import { Database } from "../src/effects/Database.ts"
import { Ledger } from "../src/effects/Ledger.ts"
import { Mailer } from "../src/effects/Mailer.ts"
import { Partners } from "../src/effects/Partners.ts"
import { ObjectStore } from "../src/effects/ObjectStore.ts"
import { Outbox } from "../src/effects/Outbox.ts"
import { sinksLayer } from "../src/entrypoints/sinks.ts"
import { deliveryKey } from "../src/domain/DeliveryFolder.ts"
import { PipelineConfig } from "../src/pipeline/PipelineConfig.ts"
import { processDelivery } from "../src/pipeline/processDelivery.ts"
import { mainThreadSchedule } from "./processCpu.ts"
import { peakRss } from "./peakRss.ts"
import { COLLECT_AFTER, keepMemoryDown } from "../src/entrypoints/bunMemory.ts"

// The collector guard `batch` and `worker` run: what is measured is what runs.
keepMemoryDown(COLLECT_AFTER.deliveries)

const env = (name: string): string => {
  const value = process.env[name]
  if (!value) throw new Error(`${name} is not set`)
  return value
}


const bucket = env("BENCH_BUCKET")
const key = deliveryKey(bucket, env("BENCH_PREFIX"), "incoming/")
if (!key) throw new Error("BENCH_PREFIX must look like incoming/<partner>/<delivery>/")

// The destinations as the launchers choose them: LOADERS_SINKS (PostgreSQL alone by default), LOADERS_LAKE_*.
const layer = Layer.mergeAll(sinksLayer(datasets), Ledger.layer({ lease: Duration.minutes(2) }), Outbox.layer({ lease: Duration.minutes(2) })).pipe(
  Layer.provideMerge(
    Layer.mergeAll(
      ObjectStore.layerWith({ bucket, endpoint: env("BENCH_S3_ENDPOINT"), credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } }),
      Database.layerPostgres(Redacted.make(env("DATABASE_URL"))),
      Mailer.layerOutbox(join(tmpdir(), "loaders-bench-outbox")),
      Partners.layerWith({}),
      PipelineConfig.layerWith(process.env.LOADERS_BATCH_SIZE ? { batchSize: Number(process.env.LOADERS_BATCH_SIZE) } : {})
    )
  )
)

const started = performance.now()
const cpuAtStart = process.cpuUsage()
const faultsAtStart = process.resourceUsage().minorPageFault
const scheduleAtStart = mainThreadSchedule()
// Telemetry as the entry points have it: exporting when OTEL_EXPORTER_OTLP_ENDPOINT is set.
const outcome = await Effect.runPromise(
  Effect.scoped(processDelivery(key)).pipe(Effect.provide(Layer.provideMerge(layer, TelemetryLayer)))
)
const seconds = (performance.now() - started) / 1000
const cpu = process.cpuUsage(cpuAtStart)
if (outcome._tag !== "Processed") throw new Error(`delivery was ${outcome._tag}`)
const cpuSeconds = (cpu.user + cpu.system) / 1e6
const systemSeconds = cpu.system / 1e6
const pageFaults = process.resourceUsage().minorPageFault - faultsAtStart
const schedule = mainThreadSchedule()
const mainThread = { onCpu: schedule.onCpu - scheduleAtStart.onCpu, waiting: schedule.waiting - scheduleAtStart.waiting }
const { status, totals, rows } = outcome.report
console.log(JSON.stringify({ status, totals, rows, seconds, cpuSeconds, systemSeconds, mainThread, pageFaults, peakRss: peakRss() }))
