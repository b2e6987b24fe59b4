import { Config, Context, Duration, Effect, Layer } from "effect"
import { hostname } from "node:os"
import { resolve } from "node:path"

/** Where deliveries live and how runs behave; read once from the environment at start. */
export interface PipelineSettings {
  /** Folder deliveries are deposited under: `<incoming><partner>/<delivery>/<file>`. */
  readonly incomingPrefix: string
  readonly successPrefix: string
  readonly failurePrefix: string
  /** Run-scoped work objects (a run's rejections until its archive has them). */
  readonly stagingPrefix: string
  /** Deliveries a backfill processes at once. */
  readonly concurrency: number
  /** Records per sink batch: bounds memory and the size of one COPY. */
  readonly batchSize: number
  /** A folder without a manifest is processed once no object arrived for this long. */
  readonly quietPeriod: Duration.Duration
  /**
   * A delivery opened through the HTTP API and never completed is given up this long after its last
   * object arrived: failed with a report saying so, its files archived under the failure prefix.
   */
  readonly receivingExpiry: Duration.Duration
  /** How long a run's claim on a delivery lasts without renewal (a dead worker's runs wait this long). */
  readonly lease: Duration.Duration
  /** Local folder a dry run writes its reports to: `<dryRunDir>/<partner>/<delivery>/_report.json`. */
  readonly dryRunDir: string
  /** Names this process in the ledger (host and pid). */
  readonly owner: string
}

const folder = (name: string, fallback: string) =>
  Config.String(name).pipe(
    Config.withDefault(fallback),
    Config.map((prefix) => (prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`))
  )

/** Pipeline settings, from `LOADERS_*` environment variables (see README and `.env.example`). */
export class PipelineConfig extends Context.Service<PipelineConfig, PipelineSettings>()("loaders/PipelineConfig") {
  static readonly layer = Layer.effect(
    PipelineConfig,
    Effect.gen(function*() {
      return PipelineConfig.of({
        incomingPrefix: yield* folder("LOADERS_INCOMING_PREFIX", "incoming/"),
        successPrefix: yield* folder("LOADERS_SUCCESS_PREFIX", "success/"),
        failurePrefix: yield* folder("LOADERS_FAILURE_PREFIX", "failure/"),
        stagingPrefix: yield* folder("LOADERS_STAGING_PREFIX", "staging/"),
        concurrency: yield* Config.Int("LOADERS_CONCURRENCY").pipe(Config.withDefault(2)),
        batchSize: yield* Config.Int("LOADERS_BATCH_SIZE").pipe(Config.withDefault(1000)),
        quietPeriod: yield* Config.Duration("LOADERS_QUIET_PERIOD").pipe(Config.withDefault(Duration.minutes(5))),
        receivingExpiry: yield* Config.Duration("LOADERS_API_OPEN_EXPIRY").pipe(Config.withDefault(Duration.days(7))),
        lease: yield* Config.Duration("LOADERS_LEASE").pipe(Config.withDefault(Duration.minutes(2))),
        dryRunDir: resolve(yield* Config.String("LOADERS_DRY_RUN_DIR").pipe(Config.withDefault(".loaders/dry-run"))),
        owner: `${hostname()}:${process.pid}`
      })
    })
  )

  /** Explicit settings (tests, embedded default), with the same defaults as the environment. */
  static readonly layerWith = (settings: Partial<PipelineSettings>) =>
    Layer.succeed(PipelineConfig, {
      incomingPrefix: "incoming/",
      successPrefix: "success/",
      failurePrefix: "failure/",
      stagingPrefix: "staging/",
      concurrency: 2,
      batchSize: 1000,
      quietPeriod: Duration.minutes(5),
      receivingExpiry: Duration.days(7),
      lease: Duration.minutes(2),
      dryRunDir: resolve(".loaders/dry-run"),
      owner: `${hostname()}:${process.pid}`,
      ...settings
    })
}
