import { Config, Context, Effect, Layer, Option, Stream } from "effect"
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { TelemetryLayer } from "../../otel/telemetry.ts"
import { datasets } from "../../schemas/registry.ts"
import { Database, pgliteDir } from "../effects/Database.ts"
import { EMBEDDED_S3_PORT, EmbeddedS3Error, EmbeddedS3Events, startEmbeddedS3 } from "../effects/EmbeddedS3.ts"
import { Ledger } from "../effects/Ledger.ts"
import { Mailer } from "../effects/Mailer.ts"
import { Partners } from "../effects/Partners.ts"
import { Subscribers } from "../effects/Subscribers.ts"
import { ObjectStore } from "../effects/ObjectStore.ts"
import { Outbox } from "../effects/Outbox.ts"
import { sinksLayer } from "./sinks.ts"
import { sweepErrorLogs } from "../pipeline/ErrorLog.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { embeddedS3Dir } from "./embedded.ts"
import { hidePassword } from "./startupProblem.ts"

/** Where this process reads and writes, in words, for the user. */
export class Environment extends Context.Service<Environment, { readonly lines: ReadonlyArray<string> }>()(
  "loaders/Environment"
) {}

const EXAMPLES = fileURLToPath(new URL("../../examples/", import.meta.url))
const EMBEDDED_BUCKET = "loaders"

const filesUnder = (dir: string): Array<string> =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? filesUnder(path) : [path]
  })

/** Deposits the sample deliveries of `examples/` under the incoming prefix. */
const seedExamples = Effect.gen(function*() {
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  for (const path of filesUnder(EXAMPLES)) {
    yield* store.put(`${config.incomingPrefix}${relative(EXAMPLES, path)}`, readFileSync(path))
  }
})

/** The embedded S3's port: `LOADERS_EMBEDDED_S3_PORT` exactly, else 4569 or any free port when it is taken. */
const embeddedPort = Effect.gen(function*() {
  const port = yield* Config.option(Config.Int("LOADERS_EMBEDDED_S3_PORT"))
  if (Option.isNone(port)) return { port: EMBEDDED_S3_PORT, fallback: true }
  if (port.value < 0 || port.value > 65535) {
    return yield* new EmbeddedS3Error({ reason: `LOADERS_EMBEDDED_S3_PORT must be a port number (0 to 65535, 0: any free port), got ${port.value}` })
  }
  return { port: port.value, fallback: false }
})

/**
 * The object store: S3 (or any S3-compatible endpoint) when `LOADERS_S3_BUCKET` is set; otherwise
 * an embedded s3rver over `<LOADERS_EMBEDDED_DIR>/s3`, seeded with `examples/` when first created,
 * and announced (endpoint and credentials, at Info) by `announce` so a user can reach it too. A
 * short-lived command nobody reaches (`anyPort`) takes any free port, so it runs beside `serve`.
 * The embedded server's object events come with it (`EmbeddedS3Events`), for `serve` to take.
 */
export const objectStore = Effect.fnUntraced(function*(lines: Array<string>, options: { readonly anyPort?: boolean } = {}) {
  const bucket = yield* Config.option(Config.String("LOADERS_S3_BUCKET"))
  if (Option.isSome(bucket)) {
    const endpoint = yield* Config.option(Config.String("LOADERS_S3_ENDPOINT"))
    lines.push(`Object store: s3://${bucket.value} at ${Option.getOrElse(endpoint, () => "AWS S3")}`)
    return { layer: ObjectStore.layer, fresh: false, announce: Layer.empty, events: Layer.empty }
  }
  const directory = yield* embeddedS3Dir
  const fresh = !existsSync(directory)
  const asked = options.anyPort ? { port: 0, fallback: false } : yield* embeddedPort
  const s3 = yield* startEmbeddedS3({ directory, buckets: [EMBEDDED_BUCKET], ...asked })
  lines.push(
    `Object store: embedded S3 at ${s3.endpoint}, bucket "${EMBEDDED_BUCKET}", kept in ${directory}` +
      (fresh ? " (new: seeded with the sample deliveries of examples/)" : "")
  )
  const moved = s3.port === asked.port || asked.port === 0 ? "" : ` (port ${asked.port} is in use; LOADERS_EMBEDDED_S3_PORT picks another)`
  const announce = Layer.effectDiscard(
    Effect.logInfo(
      `Embedded S3 at ${s3.endpoint}${moved}, bucket "${EMBEDDED_BUCKET}": ` +
        `AWS_ACCESS_KEY_ID=${s3.credentials.accessKeyId} AWS_SECRET_ACCESS_KEY=${s3.credentials.secretAccessKey}`
    )
  )
  const layer = ObjectStore.layerWith({
    bucket: EMBEDDED_BUCKET,
    endpoint: s3.endpoint,
    credentials: s3.credentials,
    timeout: yield* ObjectStore.timeoutConfig
  })
  return { layer, fresh, announce, events: Layer.succeed(EmbeddedS3Events, { subscribe: s3.onEvent }) }
})

const database = Effect.fnUntraced(function*(lines: Array<string>) {
  const url = yield* Config.option(Config.String("DATABASE_URL"))
  const dir = resolve(yield* pgliteDir)
  lines.push(
    Option.isSome(url)
      ? `Database: PostgreSQL at ${hidePassword(url.value)} (schema "loaders")`
      : `Database: embedded PGlite in ${dir} (schema "loaders")`
  )
  return Database.layer
})

const mailer = Effect.fnUntraced(function*(lines: Array<string>) {
  const resend = yield* Config.option(Config.Redacted("RESEND_API_KEY"))
  const outbox = resolve(yield* Config.String("LOADERS_OUTBOX_DIR").pipe(Config.withDefault(".loaders/outbox")))
  lines.push(
    Option.isSome(resend)
      ? `Report emails: Resend (kept in ${outbox} when sending keeps failing)`
      : `Report emails: local outbox ${outbox} (set RESEND_API_KEY to send them)`
  )
  return Mailer.layer
})

/**
 * Everything the pipeline needs, from the environment (see README and `.env.example`); the
 * embedded S3 server, when used, lives as long as the layer.
 */
export const AppLayer = Layer.unwrap(
  Effect.gen(function*() {
    const lines: Array<string> = []
    const settings = yield* Effect.provide(
      Effect.gen(function*() {
        return yield* PipelineConfig
      }),
      PipelineConfig.layer
    )
    const store = yield* objectStore(lines)
    const base = Layer.mergeAll(
      store.layer,
      store.events,
      yield* mailer(lines),
      Partners.layer,
      Subscribers.layer,
      yield* database(lines),
      Layer.succeed(PipelineConfig, settings),
      Layer.succeed(Environment, { lines })
    )
    const seed = store.fresh ? Layer.effectDiscard(seedExamples) : Layer.empty
    return Layer.mergeAll(
      sinksLayer(datasets),
      Ledger.layer({ lease: settings.lease }),
      Outbox.layer({ lease: settings.lease }),
      seed,
      store.announce,
      Layer.effectDiscard(sweepErrorLogs)
    ).pipe(
      Layer.provideMerge(base),
      Layer.provideMerge(TelemetryLayer)
    )
  })
)

/** What the user should know about where things are, before a run. */
export const describeEnvironment = Effect.gen(function*() {
  const { lines } = yield* Environment
  const store = yield* ObjectStore
  const config = yield* PipelineConfig
  const count = yield* Stream.runCount(store.list(config.incomingPrefix))
  return [
    ...lines,
    `Deliveries: ${config.incomingPrefix} (${count} object${count === 1 ? "" : "s"} waiting) → ${config.successPrefix} or ${config.failurePrefix}`
  ].join("\n")
})
