import { describe, expect, test } from "bun:test"
import postgres from "postgres"
import { awsEvent, eventBridgeEvent, minioEvent } from "../support/events.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { launchers, type Runtime, serverEnv, startServer } from "../support/server.ts"
import { fakeSns } from "../support/sns.ts"

const SECRET = "serve-test-secret"

for (const runtime of Object.keys(launchers) as Array<Runtime>) {
  describe(`the HTTP app served by ${runtime}`, () => {
    test("each event shape posted to a real server leads to one run per delivery, archived and loaded", async () => {
      const { s3, client, bucket } = await freshBucket()
      const url = await freshDatabase()
      const sns = await fakeSns()
      const server = await startServer(runtime, {
        ...serverEnv(s3, bucket, url),
        LOADERS_WEBHOOK_SECRET: SECRET,
        LOADERS_SNS_TOPICS: sns.topic,
        LOADERS_SNS_URL_PATTERN: sns.urlPattern
      })
      const { base } = server
      expect(server.output()).toContain(`(${runtime})`)
      expect((await fetch(`${base}/readyz`)).status).toBe(200)
      // The portal's pages (hono/jsx) render on this runtime too.
      const signIn = await fetch(`${base}/portal/sign-in`, { headers: { "accept-language": "en" } })
      expect({ status: signIn.status, form: (await signIn.text()).includes('<form method="post" action="/portal/sign-in">') }).toEqual({ status: 200, form: true })

      const shapes = {
        aws: (key: string) => ({ body: JSON.stringify(awsEvent(bucket, [key])), headers: { authorization: `Bearer ${SECRET}` } }),
        minio: (key: string) => ({ body: JSON.stringify(minioEvent(bucket, key)), headers: { authorization: `Bearer ${SECRET}` } }),
        eventbridge: (key: string) => ({ body: JSON.stringify(eventBridgeEvent(bucket, key)), headers: { authorization: `Bearer ${SECRET}` } }),
        sns: (key: string) => ({
          body: JSON.stringify(sns.notification(awsEvent(bucket, [key]))),
          headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" }
        })
      }
      let id = 0
      for (const [shape, make] of Object.entries(shapes)) {
        const prefix = `incoming/${shape}/d 1+é/`
        const records = [0, 1].map((i) => property(id++ * 10 + i))
        await deposit(client, bucket, prefix, {
          "properties.json": jsonArray(records),
          "_manifest.json": JSON.stringify({ partner: shape, delivery: "d 1+é", files: [{ name: "properties.json", dataset: "properties", records: 2 }] })
        })
        const { body, headers } = make(`${prefix}_manifest.json`)
        const response = await fetch(`${base}/webhooks/s3`, { method: "POST", body, headers })
        expect([shape, response.status]).toEqual([shape, 202])
      }
      const unauthenticated = await fetch(`${base}/webhooks/s3`, { method: "POST", body: JSON.stringify(awsEvent(bucket, ["incoming/x/y/z.json"])) })
      expect(unauthenticated.status).toBe(401)

      // Done when every report is archived and every source deleted (the last step of a run).
      for (let i = 0; ; i++) {
        const done = await keysUnder(client, bucket, "success/")
        const left = await keysUnder(client, bucket, "incoming/")
        if (done.filter((k) => k.endsWith("_report.json")).length === 4 && left.length === 0) break
        if (i > 300) throw new Error(`deliveries were not all processed: ${done.join(", ")}; left ${left.join(", ")}\n${server.output()}`)
        await Bun.sleep(100)
      }
      const sql = postgres(url, { max: 1, onnotice: () => {} })
      const [rows] = await sql`SELECT count(*)::int AS n, count(DISTINCT _delivery)::int AS runs FROM loaders.properties`
      await sql.end()
      expect(rows).toEqual({ n: 8, runs: 4 })

      // SIGTERM: the server stops and exits cleanly.
      expect(await server.stop()).toBe(0)
    }, 90_000)
  })
}
