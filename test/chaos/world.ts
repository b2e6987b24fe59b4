import {
  CopyObjectCommand,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  PutObjectCommand,
  type S3Client
} from "@aws-sdk/client-s3"
import { createReadStream, mkdirSync, readdirSync, statSync } from "node:fs"
import { join } from "node:path"
import postgres from "postgres"
import type { EmbeddedS3 } from "../../src/effects/EmbeddedS3.ts"
import { type Cluster, dedicatedCluster } from "../support/postgres.ts"
import { rawClient, s3Server } from "../support/s3.ts"
import { type Delivery, manifestOf } from "./deliveries.ts"
import { listKeys } from "./snapshot.ts"

/** One trial's own database and bucket, with the deliveries waiting under incoming/. */
export interface Target {
  readonly databaseUrl: string
  readonly bucket: string
  /** The server the database is on. */
  readonly cluster: Cluster
}

const SEED_BUCKET = "chaos-seed"

/**
 * The services the trials share — one s3rver, two PostgreSQL clusters (one that the trials which
 * stop the server may stop without faulting the others running beside them) — and the
 * deliveries, uploaded once to a seed bucket and copied server-side into each trial's fresh bucket.
 */
export class World {
  private buckets = 0

  private constructor(
    readonly s3: EmbeddedS3,
    readonly client: S3Client,
    private readonly clusters: { readonly shared: Cluster; readonly stoppable: Cluster },
    readonly deliveries: ReadonlyArray<Delivery>,
    /** `TMPDIR` of every batch process, where leftover `loaders-errors-*` directories are counted. */
    readonly tmp: string,
    readonly outbox: string
  ) {}

  static async start(deliveries: ReadonlyArray<Delivery>, work: string): Promise<World> {
    const [s3, shared, stoppable] = await Promise.all([s3Server(), dedicatedCluster(), dedicatedCluster()])
    const client = rawClient(s3)
    await client.send(new CreateBucketCommand({ Bucket: SEED_BUCKET }))
    for (const d of deliveries) {
      const prefix = `incoming/${d.partner}/${d.delivery}/`
      for (const f of d.files) {
        await client.send(
          new PutObjectCommand({ Bucket: SEED_BUCKET, Key: prefix + f.name, Body: createReadStream(f.path), ContentLength: statSync(f.path).size })
        )
      }
      // The manifest last, as a partner would: the delivery is ready once it is there.
      await client.send(new PutObjectCommand({ Bucket: SEED_BUCKET, Key: `${prefix}_manifest.json`, Body: manifestOf(d) }))
    }
    const tmp = join(work, "tmp")
    const outbox = join(work, "outbox")
    mkdirSync(tmp, { recursive: true })
    mkdirSync(outbox, { recursive: true })
    return new World(s3, client, { shared, stoppable }, deliveries, tmp, outbox)
  }

  /**
   * A fresh database and a fresh bucket holding every delivery under incoming/; the database on
   * the cluster no other trial uses when the trial will stop its server.
   */
  async target(options: { readonly stopsServer?: boolean } = {}): Promise<Target> {
    const cluster = options.stopsServer ? this.clusters.stoppable : this.clusters.shared
    const bucket = `chaos-${++this.buckets}`
    await this.client.send(new CreateBucketCommand({ Bucket: bucket }))
    for (const key of await this.keys(SEED_BUCKET)) {
      await this.client.send(new CopyObjectCommand({ Bucket: bucket, Key: key, CopySource: `${SEED_BUCKET}/${key}` }))
    }
    return { databaseUrl: await cluster.freshDatabase(), bucket, cluster }
  }

  /** Drops the trial's database and empties and removes its bucket. */
  async dispose(target: Target): Promise<void> {
    const keys = await this.keys(target.bucket)
    for (let i = 0; i < keys.length; i += 1000) {
      await this.client.send(
        new DeleteObjectsCommand({ Bucket: target.bucket, Delete: { Objects: keys.slice(i, i + 1000).map((Key) => ({ Key })) } })
      )
    }
    await this.client.send(new DeleteBucketCommand({ Bucket: target.bucket }))
    const name = new URL(target.databaseUrl).pathname.slice(1)
    const admin = this.admin(target.cluster)
    await admin.unsafe(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`).finally(() => admin.end({ timeout: 5 }))
  }

  /** A connection to a cluster's `postgres` database, for watching and faulting sessions. */
  admin(cluster: Cluster): postgres.Sql {
    return postgres({ host: "127.0.0.1", port: cluster.port, user: "postgres", database: "postgres", max: 1, onnotice: () => {}, connect_timeout: 5 })
  }

  keys(bucket: string, prefix = ""): Promise<Array<string>> {
    return listKeys(this.client, bucket, prefix)
  }

  /** Temp directories a run left behind (`loaders-errors-*` in the batch processes' TMPDIR). */
  leftovers(): Array<string> {
    return readdirSync(this.tmp).filter((name) => name.startsWith("loaders-errors-"))
  }

  /** The environment of a `batch` process on `target` (through `endpoint`, by default s3rver itself). */
  settings(target: Target, lease: string, endpoint = this.s3.endpoint): Record<string, string> {
    return {
      DATABASE_URL: target.databaseUrl,
      LOADERS_S3_BUCKET: target.bucket,
      LOADERS_S3_ENDPOINT: endpoint,
      AWS_ACCESS_KEY_ID: this.s3.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.s3.credentials.secretAccessKey,
      AWS_REGION: "us-east-1",
      LOADERS_LEASE: lease,
      // Two deliveries load side by side, as the clean run timed them, whatever a local .env says.
      LOADERS_CONCURRENCY: "2",
      LOADERS_LOG_FORMAT: "json",
      LOADERS_OUTBOX_DIR: this.outbox,
      TMPDIR: this.tmp
    }
  }
}
