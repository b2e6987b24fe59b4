import { describe, expect, test } from "bun:test"
import { join } from "node:path"
import { tempDirs } from "../support/cli.ts"
import { awsEvent } from "../support/events.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { dedicatedCluster } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { serverEnv, startServer } from "../support/server.ts"
import { until } from "../support/wait.ts"

const SECRET = "queue-down-secret"
const tempDir = tempDirs("queue-down")

const METRICS_DOWN = "queue metrics: could not count the delivery jobs"
const METRICS_UP = "queue metrics: counting the delivery jobs again"
const occurrences = (text: string, part: string) => text.split(part).length - 1

describe("serve with the job queue's PostgreSQL stopped", () => {
  test("POST /webhooks/s3 answers 503 with Retry-After and a reason; after a restart the same post is accepted and processed", async () => {
    const cluster = await dedicatedCluster()
    const url = await cluster.freshDatabase()
    const { s3, bucket, client } = await freshBucket()
    const serve = await startServer("Bun", {
      ...serverEnv(s3, bucket, url),
      LOADERS_WEBHOOK_SECRET: SECRET,
      LOADERS_OUTBOX_DIR: join(tempDir(), "outbox"),
      LOADERS_QUIET_PERIOD: "0 seconds",
      LOADERS_QUEUE_METRICS_INTERVAL: "200 millis",
      LOADERS_DB_TIMEOUT: "5 seconds"
    })
    const prefix = "incoming/acme/while-down/"
    await deposit(client, bucket, prefix, { "properties.json": jsonArray([0, 1].map(property)) })
    const post = () =>
      fetch(`${serve.base}/webhooks/s3`, {
        method: "POST",
        headers: { authorization: `Bearer ${SECRET}`, "content-type": "application/json" },
        body: JSON.stringify(awsEvent(bucket, [`${prefix}properties.json`])),
        signal: AbortSignal.timeout(30_000)
      })
    try {
      await cluster.stop("fast")
      const refused = await post()
      const body = (await refused.json()) as { error: string }
      expect([refused.status, refused.headers.get("retry-after")]).toEqual([503, "30"])
      // One line naming the folder and why, once.
      expect(body.error).toMatch(new RegExp(`^the job queue did not take ${prefix}: \\S`))
      expect(occurrences(body.error, prefix)).toBe(1)
      expect(await keysUnder(client, bucket, "success/")).toEqual([])

      // The gauges' failed count is logged once however many intervals pass while the database is down.
      await until(15_000, () => `no metrics warning:\n${serve.output()}`, async () =>
        serve.output().includes(METRICS_DOWN) ? true : undefined)
      // Not ordering events: a window of five intervals in which nothing more may be logged.
      await Bun.sleep(1000)
      const second = await post()
      expect(second.status).toBe(503)
      expect(occurrences(serve.output(), METRICS_DOWN)).toBe(1)

      await cluster.start()
      // Connections come back on their own: the same post is accepted, the delivery processed.
      const accepted = await until(30_000, () => `no 202 after the restart:\n${serve.output()}`, async () => {
        const response = await post()
        return response.status === 202 ? response : undefined
      })
      expect(((await accepted.json()) as { deliveries: Array<string> }).deliveries).toEqual([prefix])
      // The run's last step deletes the sources, after its report is archived.
      await until(30_000, () => `not archived after the restart:\n${serve.output()}`, async () => {
        const keys = await keysUnder(client, bucket, "success/acme/while-down/")
        const archived = keys.some((key) => key.endsWith("/_report.json"))
        return archived && (await keysUnder(client, bucket, prefix)).length === 0 ? true : undefined
      })
      await until(15_000, () => `no metrics recovery line:\n${serve.output()}`, async () =>
        serve.output().includes(METRICS_UP) ? true : undefined)
      expect(occurrences(serve.output(), METRICS_DOWN)).toBe(1)
    } catch (error) {
      // Stopped without a check of its own, which would hide this failure behind its exit code.
      await serve.stop()
      throw new Error(`${error instanceof Error ? error.message : String(error)}\nserve:\n${serve.output()}`, { cause: error })
    }
    const code = await serve.stop()
    expect([code, code === 0 ? "" : serve.output()]).toEqual([0, ""])
  }, 120_000)
})
