import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from "@aws-sdk/client-s3"
import { Duration, Effect, Layer, Redacted } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { datasets } from "../../schemas/registry.ts"
import type { DeliveryKey } from "../../src/domain/DeliveryFolder.ts"
import { Database } from "../../src/effects/Database.ts"
import { Ledger } from "../../src/effects/Ledger.ts"
import { Outbox } from "../../src/effects/Outbox.ts"
import { Mailer } from "../../src/effects/Mailer.ts"
import { Partners } from "../../src/effects/Partners.ts"
import type { PartnerSettings } from "../../schemas/PartnerConfig.ts"
import type { LakeSettings } from "../../src/effects/lake/LakeSink.ts"
import { PipelineConfig } from "../../src/pipeline/PipelineConfig.ts"
import { processDelivery } from "../../src/pipeline/processDelivery.ts"
import type { DeliveryReport } from "../../src/pipeline/Report.ts"
import { sinksLayerWith } from "../../src/entrypoints/sinks.ts"
import { freshPGlite } from "./pglite.ts"
import { freshDatabase } from "./postgres.ts"
import { freshBucket } from "./s3.ts"

const datasetsByName = new Map(datasets.map((d) => [d.name, d]))

/** The key of delivery `name` of `partner` under `incoming/` in `bucket`. */
export const deliveryKey = (bucket: string, partner: string, name: string): DeliveryKey => ({
  bucket,
  prefix: `incoming/${partner}/${name}/`,
  partner,
  delivery: name
})

/** Processes `key` (as a worker would) and answers its report; a skipped delivery fails the test. */
export const processedReport = (key: DeliveryKey) =>
  processDelivery(key).pipe(
    Effect.map((outcome) => {
      if (outcome._tag !== "Processed") throw new Error(`expected a processed delivery, got ${outcome._tag} (${outcome.reason})`)
      return outcome.report
    })
  )

/** A delivery for tests that open a sink run by hand. */
export const aDelivery: DeliveryKey = { bucket: "test", prefix: "incoming/acme/d1/", partner: "acme", delivery: "d1" }

/** The two databases every pipeline test runs against. */
export const databases = {
  PostgreSQL: () =>
    Layer.unwrap(Effect.promise(freshDatabase).pipe(Effect.map((url) => Database.layerPostgres(Redacted.make(url))))),
  PGlite: freshPGlite
} as const

/**
 * A fresh bucket on the shared s3rver plus everything `processDelivery` needs on `database`,
 * with small batches so several batches run even on small deliveries.
 */
export const pipelineFixture = async <E>(
  database: Layer.Layer<Database, E>,
  settings: Partial<PipelineConfig["Service"]> = {},
  partners: Readonly<Record<string, PartnerSettings>> = {},
  /** Where the pipeline reaches the bucket (a fault proxy); the shared s3rver itself by default. */
  endpoint?: string,
  /** `LOADERS_SINKS` and the lake's settings; PostgreSQL alone by default. */
  sinks: { readonly sinks: string; readonly lake?: Partial<Omit<LakeSettings, "stagingPrefix">> } = { sinks: "postgres" }
) => {
  const bucket = await freshBucket(endpoint)
  const outbox = mkdtempSync(join(tmpdir(), "loaders-outbox-"))
  const lake = { prefix: "lake/", format: "parquet" as const, partBytes: 8 << 20, rowGroupRows: 1000, ...sinks.lake }
  const layer = Layer.mergeAll(
    sinksLayerWith(datasets, sinks.sinks, lake),
    Ledger.layer({ lease: Duration.seconds(30) }),
    Outbox.layer({ lease: Duration.seconds(30) })
  ).pipe(
    Layer.provideMerge(
      Layer.mergeAll(
        bucket.layer,
        database,
        Mailer.layerOutbox(outbox),
        Partners.layerWith(partners),
        PipelineConfig.layerWith({ quietPeriod: Duration.zero, batchSize: 7, ...settings })
      )
    )
  )
  return { ...bucket, layer, outbox }
}

/** Uploads files of a delivery with the plain SDK, as a partner would. */
export const deposit = async (
  client: S3Client,
  bucket: string,
  prefix: string,
  files: Readonly<Record<string, string | Uint8Array>>
) => {
  for (const [name, body] of Object.entries(files)) {
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: `${prefix}${name}`, Body: body }))
  }
}

export const keysUnder = async (client: S3Client, bucket: string, prefix: string): Promise<Array<string>> => {
  const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix }))
  return (listed.Contents ?? []).map((o) => o.Key ?? "").sort()
}

export const readObject = async (client: S3Client, bucket: string, key: string): Promise<string> => {
  const object = await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))
  return (await object.Body?.transformToString("utf-8")) ?? ""
}

export const readReport = async (client: S3Client, bucket: string, key: string): Promise<DeliveryReport> =>
  JSON.parse(await readObject(client, bucket, key)) as DeliveryReport

/**
 * The report's counts against what the test knows independently: `deposited` records per dataset,
 * and the rows the run left in each table (`_delivery` = its run). `loaded` must be those rows,
 * `rejected` the rest of what was deposited; per file counts must add up to the totals.
 */
export const countsOf = (report: DeliveryReport) =>
  Effect.gen(function*() {
    const db = yield* Database
    const datasets: Record<string, { read: number; loaded: number; rejected: number; rows: number }> = {}
    for (const [name, counts] of Object.entries(report.datasets)) {
      const table = datasetsByName.get(name)?.table ?? name
      const [row] = yield* db.query<{ n: number }>(`SELECT count(*)::int AS n FROM loaders.${table} WHERE _delivery = $1`, [
        report.runId ?? ""
      ])
      datasets[name] = { read: counts.read, loaded: counts.loaded, rejected: counts.rejected, rows: row?.n ?? 0 }
    }
    const fileTotal = (field: "read" | "loaded" | "rejected") => report.files.reduce((sum, file) => sum + file[field], 0)
    return { datasets, files: { read: fileTotal("read"), loaded: fileTotal("loaded"), rejected: fileTotal("rejected") } }
  })

/** What `countsOf` must answer for a run that read `read` records of each dataset and left `rows`. */
export const expectedCounts = (read: Readonly<Record<string, number>>, rows: Readonly<Record<string, number>>) => {
  const datasets: Record<string, { read: number; loaded: number; rejected: number; rows: number }> = {}
  for (const [name, n] of Object.entries(read)) {
    const loaded = rows[name] ?? 0
    datasets[name] = { read: n, loaded, rejected: n - loaded, rows: loaded }
  }
  const sum = (pick: (c: { read: number; loaded: number; rejected: number }) => number) =>
    Object.values(datasets).reduce((total, counts) => total + pick(counts), 0)
  return { datasets, files: { read: sum((c) => c.read), loaded: sum((c) => c.loaded), rejected: sum((c) => c.rejected) } }
}

export const countRows = (table: string) =>
  Effect.gen(function*() {
    const db = yield* Database
    const [row] = yield* db.query<{ n: number }>(`SELECT count(*)::int AS n FROM loaders.${table}`)
    return row?.n ?? 0
  })
