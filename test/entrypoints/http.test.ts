import { HeadObjectCommand } from "@aws-sdk/client-s3"
import { afterAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Layer, ManagedRuntime, Redacted } from "effect"
import { ApiConfig } from "../../src/api/ApiConfig.ts"
import { PrometheusMetrics } from "../../otel/PrometheusMetrics.ts"
import { Database } from "../../src/effects/Database.ts"
import { type DeliveryJob, type JobAttempt, JobQueue } from "../../src/effects/JobQueue.ts"
import { makeApp } from "../../src/entrypoints/http.ts"
import * as PgBossJobQueue from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { handleDeliveryJob } from "../../src/pipeline/deliveryJob.ts"
import { Webhook } from "../../src/webhook/Webhook.ts"
import { WebhookConfig, type WebhookSettings } from "../../src/webhook/WebhookConfig.ts"
import { awsEvent, eventBridgeEvent, minioEvent, testEvent } from "../support/events.ts"
import { fastJobQueue } from "../support/jobQueue.ts"
import { portalSettings } from "../support/api.ts"
import { PortalAuth } from "../../src/portal/PortalAuth.ts"
import { jsonArray, property, transaction } from "../support/fixtures.ts"
import { databases, deposit, keysUnder, pipelineFixture } from "../support/pipeline.ts"
import { opensslHmacSha256 } from "../support/openssl.ts"
import { fakeSns } from "../support/sns.ts"

const SECRET = "webhook-secret-for-tests"
const disposers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const dispose of disposers) await dispose()
})

/** The HTTP app in-process, with in-process workers, on a fresh bucket and database. */
const server = async (webhook: Partial<WebhookSettings> = {}, quietPeriod: Duration.Duration = Duration.zero) => {
  const fixture = await pipelineFixture(databases.PostgreSQL(), { quietPeriod })
  // Every job a worker takes, to show that a refused request queued nothing.
  const jobs: Array<DeliveryJob> = []
  const handle = (job: DeliveryJob, attempt: JobAttempt) =>
    Effect.sync(() => jobs.push(job)).pipe(Effect.andThen(handleDeliveryJob(job, attempt)))
  const workers = Layer.effectDiscard(
    JobQueue.use((queue) => Effect.forkScoped(queue.take(handle, { workers: 2, perGroup: 2 })))
  )
  const layer = Layer.mergeAll(Webhook.layer, workers, PrometheusMetrics.layer).pipe(
    Layer.provideMerge(PgBossJobQueue.layerWith(fastJobQueue)),
    Layer.provideMerge(WebhookConfig.layerWith({ secret: Redacted.make(SECRET), ...webhook })),
    Layer.provideMerge(ApiConfig.layerWith({})),
    Layer.provideMerge(PortalAuth.layerWith(portalSettings)),
    Layer.provideMerge(fixture.layer)
  )
  const runtime = ManagedRuntime.make(layer)
  disposers.push(() => runtime.dispose())
  const app = makeApp(runtime)
  const post = (body: unknown, headers: Record<string, string> = { authorization: `Bearer ${SECRET}` }) =>
    Promise.resolve(app.request("/webhooks/s3", {
      method: "POST",
      headers: { "content-type": "application/json", ...headers },
      body: typeof body === "string" ? body : JSON.stringify(body)
    }))
  const runs = (prefix: string) =>
    runtime.runPromise(
      Database.use((db) =>
        db.query<{ n: number }>(`SELECT count(*)::int AS n FROM loaders.delivery_runs WHERE prefix = $1`, [prefix])
      ).pipe(Effect.map((rows) => rows[0]?.n ?? 0))
    )
  /** The buckets the ledger holds deliveries under. */
  const ledgerBuckets = () =>
    runtime.runPromise(
      Database.use((db) => db.query<{ bucket: string }>(`SELECT DISTINCT bucket FROM loaders.deliveries ORDER BY bucket`))
        .pipe(Effect.map((rows) => rows.map((row) => row.bucket)))
    )
  /** Waits until the queue is idle (nothing waiting, nothing in flight). */
  const settled = async () => {
    for (let i = 0; i < 200; i++) {
      const n = await runtime.runPromise(JobQueue.use((q) => q.counts))
      if (n.waiting + n.retrying + n.running === 0) return
      await Bun.sleep(50)
    }
    throw new Error("the job queue did not settle")
  }
  return { ...fixture, runtime, app, post, runs, settled, jobs, ledgerBuckets }
}

/** Polls `probe` every 100 ms until it answers something, for at most `ms`. */
const waitFor = async <A>(what: string, ms: number, probe: () => Promise<A | undefined>): Promise<A> => {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await Bun.sleep(100)) {
    const found = await probe()
    if (found !== undefined) return found
  }
  throw new Error(`${what} did not happen within ${ms} ms`)
}

const delivery = (partner: string, name: string) => `incoming/${partner}/${name}/`
const files = { "properties.json": jsonArray([0, 1, 2].map(property)) }

/** The webhook's 401 count in what `GET /metrics` answers (Prometheus' text format). */
const refusedCount = async (app: { request: (path: string) => Response | Promise<Response> }) => {
  const response = await app.request("/metrics")
  expect(response.status).toBe(200)
  expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
  const line = /^loaders_webhook_requests_total\{status="401"[^}]*\} (\d+)$/m.exec(await response.text())
  return line ? Number(line[1]) : 0
}

describe("POST /webhooks/s3 (in-process app)", () => {
  test("a missing or wrong secret is refused with 401 and changes nothing; GET /metrics counts the refusals", async () => {
    const s = await server()
    const prefix = delivery("acme", "d1")
    await deposit(s.client, s.bucket, prefix, files)
    const event = awsEvent(s.bucket, [`${prefix}properties.json`])
    const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer nope" }, { authorization: "Basic x" }]
    const before = await refusedCount(s.app)
    for (const headers of attempts) {
      const response = await s.post(event, headers)
      expect(response.status).toBe(401)
      const body = (await response.json()) as { error: string }
      expect(body.error).not.toContain(SECRET)
    }
    expect(await refusedCount(s.app)).toBe(before + attempts.length)
    await s.settled()
    expect(s.jobs).toEqual([])
    expect(await s.runs(prefix)).toBe(0)
    expect(await keysUnder(s.client, s.bucket, prefix)).toEqual([`${prefix}properties.json`])
  })

  test("HMAC mode: a signed, timestamped body passes; stale or wrong signatures do not", async () => {
    const s = await server({ auth: "hmac" })
    const body = JSON.stringify(testEvent(s.bucket))
    // Signed by openssl from the documented scheme, never by src/domain/Signature.ts.
    const signature = (secret: string, t: number, signed = `${t}.${body}`) => `t=${t},v1=${opensslHmacSha256(secret, signed)}`
    const now = Math.floor(Date.now() / 1000)
    expect((await s.post(body, { "x-loaders-signature": signature(SECRET, now) })).status).toBe(202)
    expect((await s.post(body, { "x-loaders-signature": signature(SECRET, now - 3600) })).status).toBe(401)
    expect((await s.post(body, { "x-loaders-signature": signature("other", now) })).status).toBe(401)
    expect((await s.post(body, { "x-loaders-signature": signature(SECRET, now, body) })).status).toBe(401)
    expect((await s.post(body, { authorization: `Bearer ${SECRET}` })).status).toBe(401)
  })

  test("malformed, unknown and oversized bodies get 400 and 413 with a reason", async () => {
    const s = await server({ maxBodyBytes: 1000 })
    const malformed = await s.post("{not json")
    expect(malformed.status).toBe(400)
    expect(((await malformed.json()) as { error: string }).error).toContain("not valid JSON")
    expect((await s.post({ hello: "world" })).status).toBe(400)
    expect((await s.post({ Records: ["x".repeat(2000)] })).status).toBe(413)
  })

  test("50 duplicate and shuffled events for one delivery make exactly one run", async () => {
    const s = await server()
    const prefix = delivery("acme", "burst")
    await deposit(s.client, s.bucket, prefix, {
      ...files,
      "transactions.json": jsonArray([0, 1, 2, 3].map((i) => transaction(i))),
      "_manifest.json": JSON.stringify({
        partner: "acme",
        delivery: "burst",
        files: [{ name: "properties.json", dataset: "properties" }, { name: "transactions.json", dataset: "transactions" }]
      })
    })
    const keys = ["properties.json", "transactions.json", "_manifest.json"].map((f) => `${prefix}${f}`)
    const events = Array.from({ length: 50 }, (_, i) => awsEvent(s.bucket, [keys[i % 3]!]))
    events.sort(() => Math.random() - 0.5)
    const statuses = await Promise.all(events.map((event) => s.post(event).then((r) => r.status)))
    expect(new Set(statuses)).toEqual(new Set([202]))
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
    expect((await keysUnder(s.client, s.bucket, `success/acme/burst/`)).filter((k) => k.endsWith("/_report.json")).length).toBe(1)
  })

  test("a manifest that arrives before its files waits for them", async () => {
    const s = await server()
    const prefix = delivery("acme", "early-manifest")
    await deposit(s.client, s.bucket, prefix, {
      "_manifest.json": JSON.stringify({ partner: "acme", delivery: "early-manifest", files: [{ name: "properties.json", dataset: "properties" }] })
    })
    expect((await s.post(awsEvent(s.bucket, [`${prefix}_manifest.json`]))).status).toBe(202)
    await s.settled()
    expect(await s.runs(prefix)).toBe(0)
    await deposit(s.client, s.bucket, prefix, files)
    expect((await s.post(awsEvent(s.bucket, [`${prefix}properties.json`]))).status).toBe(202)
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
    expect(await keysUnder(s.client, s.bucket, "incoming/")).toEqual([])
  })

  test("a folder without manifest runs once no object arrived for the quiet period", { timeout: 30_000 }, async () => {
    // s3rver's LastModified has a one-second resolution: a 3 s quiet period leaves room for it.
    const s = await server({}, Duration.seconds(3))
    const prefix = delivery("acme", "quiet")
    // Builds the runtime (database, migrations) first, so its start-up is not counted as quiet time.
    expect(await s.runs(prefix)).toBe(0)
    await deposit(s.client, s.bucket, prefix, files)
    const deposited = (await s.client.send(new HeadObjectCommand({ Bucket: s.bucket, Key: `${prefix}properties.json` }))).LastModified!
    expect((await s.post(awsEvent(s.bucket, [`${prefix}properties.json`]))).status).toBe(202)
    const started = await waitFor(`a run of ${prefix}`, 20_000, () =>
      s.runtime.runPromise(
        Database.use((db) => db.query<{ started_at: Date }>(`SELECT started_at FROM loaders.delivery_runs WHERE prefix = $1`, [prefix]))
      ).then((rows) => rows[0]?.started_at))
    expect(started.getTime() - deposited.getTime()).toBeGreaterThanOrEqual(3000)
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
  })

  test("keys with +, %2B, spaces and accents; MinIO and EventBridge shapes; archive events are ignored", async () => {
    const s = await server()
    const prefix = delivery("agence côte", "relevé 1+1 %2B")
    await deposit(s.client, s.bucket, prefix, { "properties été.json": jsonArray([property(1)]) })
    const minio = await s.post(minioEvent(s.bucket, `${prefix}properties été.json`))
    expect(await minio.json()).toEqual({ kind: "events", accepted: 1, ignored: 0, refused: [], deliveries: [prefix] })
    await s.settled()
    const archived = await keysUnder(s.client, s.bucket, "success/")
    expect(archived.map((k) => k.replace(/\/run-\d+\//, "/run-N/"))).toEqual([
      "success/agence côte/relevé 1+1 %2B/run-N/_report.json",
      "success/agence côte/relevé 1+1 %2B/run-N/properties été.json"
    ])
    const own = await s.post(eventBridgeEvent(s.bucket, archived[0]!))
    expect(await own.json()).toEqual({ kind: "events", accepted: 0, ignored: 1, refused: [], deliveries: [] })
    expect(await s.runs(prefix)).toBe(1)
  })

  test("SNS: signed notifications (text/plain, v1 and v2) pass; forged ones, other topics and hosts do not", async () => {
    const sns = await fakeSns()
    const s = await server({ snsTopics: [sns.topic], snsUrl: new RegExp(sns.urlPattern) })
    const prefix = delivery("acme", "via-sns")
    await deposit(s.client, s.bucket, prefix, files)
    const snsPost = (message: unknown) =>
      s.app.request("/webhooks/s3", {
        method: "POST",
        headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
        body: JSON.stringify(message)
      })
    const forged = { ...sns.notification(awsEvent(s.bucket, [`${prefix}properties.json`])), Message: JSON.stringify(awsEvent(s.bucket, ["incoming/evil/x/a.json"])) }
    expect((await snsPost(forged)).status).toBe(401)
    const otherTopic = sns.sign({ Type: "Notification", Message: "{}", TopicArn: "arn:aws:sns:eu-west-3:1:other" })
    expect((await snsPost(otherTopic)).status).toBe(403)
    const otherHost = { ...sns.notification(testEvent(s.bucket)), SigningCertURL: "https://attacker.example/cert.pem" }
    expect((await snsPost(otherHost)).status).toBe(401)
    expect((await snsPost(sns.notification(testEvent(s.bucket), "1"))).status).toBe(202)
    expect((await snsPost(sns.notification(awsEvent(s.bucket, [`${prefix}properties.json`])))).status).toBe(202)
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
    expect(sns.certificateFetches()).toBe(1)
  })

  test("SNS: a subscription to an allowed topic is confirmed by visiting its SubscribeURL", async () => {
    const sns = await fakeSns()
    const s = await server({ snsTopics: [sns.topic], snsUrl: new RegExp(sns.urlPattern) })
    const confirmation = sns.sign({
      Type: "SubscriptionConfirmation",
      Message: "You have chosen to subscribe…",
      SubscribeURL: `${sns.base}/confirm?Action=ConfirmSubscription&Token=t0k`,
      Token: "t0k"
    })
    const response = await s.app.request("/webhooks/s3", { method: "POST", body: JSON.stringify(confirmation) })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ kind: "subscription", topic: sns.topic, confirmed: true })
    expect(sns.confirmations).toEqual(["/confirm?Action=ConfirmSubscription&Token=t0k"])
  })
})

describe("POST /webhooks/s3: names and buckets", () => {
  test("keys whose names break the rule (.., %2E%2E, NUL, backslash, empty, too long) are refused with the key named; nothing is queued", async () => {
    const s = await server()
    // Deposited for real where s3rver can hold the key, so a queued job would show as a run.
    await deposit(s.client, s.bucket, "incoming/acme\\sub/d1/", files)
    await deposit(s.client, s.bucket, `incoming/acme/${"é".repeat(65)}/`, files)
    const refusals: Array<[string, string]> = [
      ["incoming/../acme/d1/properties.json", `the partner name ".." is refused (it is a relative path segment)`],
      ["incoming/acme/./properties.json", `the delivery name "." is refused (it is a relative path segment)`],
      ["incoming/acme/d1/../../other/properties.json", `the file path segment ".." is refused`],
      ["incoming/acme\\sub/d1/properties.json", `the partner name "acme\\\\sub" is refused (it holds a backslash)`],
      ["incoming/acme/d1\u0000/properties.json", `the delivery name "d1\\u0000" is refused (it holds a control character)`],
      ["incoming//d1/properties.json", `the partner name "" is refused (it is empty)`],
      [`incoming/acme/${"é".repeat(65)}/properties.json`, "is refused (it is 130 bytes long)"]
    ]
    for (const [key, reason] of refusals) {
      const response = await s.post(awsEvent(s.bucket, [key]))
      const body = (await response.json()) as { error: string }
      expect([key, response.status]).toEqual([key, 400])
      expect(body.error).toContain(`object key ${JSON.stringify(key)}`)
      expect(body.error).toContain(reason)
      expect(body.error).toMatch(/; (partner and delivery names must be 1 to 128 bytes|file paths inside a delivery must)/)
    }
    // Percent-encoded in the event itself: decoded once, then refused like the plain key.
    const encoded = awsEvent(s.bucket, ["x"])
    encoded.Records[0]!.s3.object.key = "incoming/%2E%2E/d1/properties.json"
    const response = await s.post(encoded)
    expect(response.status).toBe(400)
    expect(((await response.json()) as { error: string }).error).toContain(`the partner name ".." is refused`)
    await s.settled()
    expect(s.jobs).toEqual([])
    expect(await keysUnder(s.client, s.bucket, "success/")).toEqual([])
  })

  test("a request mixing a good key and a refused one queues the good one and lists the refusal (202)", async () => {
    const s = await server()
    const prefix = delivery("acme", "mixed")
    await deposit(s.client, s.bucket, prefix, files)
    const event = awsEvent(s.bucket, [`${prefix}properties.json`, "x"])
    event.Records[1]!.s3.object.key = "incoming/acme/%2E%2E/x.json"
    const response = await s.post(event)
    expect(response.status).toBe(202)
    const body = (await response.json()) as { accepted: number; refused: Array<string>; deliveries: Array<string> }
    expect(body.accepted).toBe(1)
    expect(body.deliveries).toEqual([prefix])
    expect(body.refused.length).toBe(1)
    expect(body.refused[0]).toContain(`the delivery name ".." is refused`)
    await s.settled()
    expect(s.jobs.map((job) => job.prefix)).toEqual([prefix])
    expect(await s.runs(prefix)).toBe(1)
  })

  test("a well-named file's event does not get a folder holding a refused key processed", async () => {
    const s = await server()
    const prefix = delivery("acme", "spoilt")
    await deposit(s.client, s.bucket, prefix, { ...files, "sub\\x.json": "[]" })
    expect((await s.post(awsEvent(s.bucket, [`${prefix}properties.json`]))).status).toBe(202)
    await s.settled()
    expect(s.jobs.map((job) => job.prefix)).toEqual([prefix])
    expect(await s.runs(prefix)).toBe(0)
    expect(await keysUnder(s.client, s.bucket, prefix)).toEqual([`${prefix}properties.json`, `${prefix}sub\\x.json`])
  })

  test("an event naming another bucket is refused (403) and processes nothing of ours", async () => {
    const s = await server()
    const prefix = delivery("acme", "elsewhere")
    await deposit(s.client, s.bucket, prefix, files)
    const response = await s.post(awsEvent("someone-elses-bucket", [`${prefix}properties.json`]))
    expect(response.status).toBe(403)
    expect(((await response.json()) as { error: string }).error).toBe(
      `object key "${prefix}properties.json": bucket "someone-elses-bucket" is refused; this service loads bucket "${s.bucket}" only`
    )
    const bridged = await s.post(eventBridgeEvent("someone-elses-bucket", `${prefix}properties.json`))
    expect(bridged.status).toBe(403)
    await s.settled()
    expect(s.jobs).toEqual([])
    expect(await s.runs(prefix)).toBe(0)
    expect(await keysUnder(s.client, s.bucket, prefix)).toEqual([`${prefix}properties.json`])
  })

  test("the same folder announced under two bucket names at once runs once, recorded under the real bucket", async () => {
    const s = await server()
    const prefix = delivery("acme", "two-names")
    await deposit(s.client, s.bucket, prefix, files)
    const key = `${prefix}properties.json`
    const statuses = await Promise.all([
      s.post(awsEvent(s.bucket, [key])).then((r) => r.status),
      s.post(awsEvent(`${s.bucket}-alias`, [key])).then((r) => r.status)
    ])
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
    expect(await s.ledgerBuckets()).toEqual([s.bucket])
    expect(statuses).toEqual([202, 403])
  })
})

describe("POST /webhooks/s3: SNS replays", () => {
  const snsPost = (app: { request: (path: string, init: RequestInit) => Response | Promise<Response> }, message: unknown) =>
    Promise.resolve(app.request("/webhooks/s3", {
      method: "POST",
      headers: { "content-type": "text/plain; charset=UTF-8", "x-amz-sns-message-type": "Notification" },
      body: JSON.stringify(message)
    }))
  const ago = (ms: number) => new Date(Date.now() - ms).toISOString()
  const MINUTE = 60_000

  test("a genuine message older than LOADERS_SNS_MAX_AGE (default 1 hour) or dated ahead is refused; within the window it passes", async () => {
    const sns = await fakeSns()
    const s = await server({ snsTopics: [sns.topic], snsUrl: new RegExp(sns.urlPattern) })
    const prefix = delivery("acme", "sns-window")
    await deposit(s.client, s.bucket, prefix, files)
    const event = JSON.stringify(awsEvent(s.bucket, [`${prefix}properties.json`]))
    const dated = (Timestamp: string) => sns.sign({ Type: "Notification", Message: event, Subject: "Amazon S3 Notification", Timestamp })

    const from2022 = dated("2022-03-14T09:26:53.589Z")
    const stale = await snsPost(s.app, from2022)
    expect(stale.status).toBe(401)
    expect(((await stale.json()) as { error: string }).error).toBe(
      `SNS message ${from2022.MessageId} was sent at 2022-03-14T09:26:53.589Z, more than 1h ago (LOADERS_SNS_MAX_AGE): refused as a replay`
    )
    expect((await snsPost(s.app, dated(ago(61 * MINUTE)))).status).toBe(401)
    const ahead = await snsPost(s.app, dated(ago(-30 * MINUTE)))
    expect(ahead.status).toBe(401)
    expect(((await ahead.json()) as { error: string }).error).toContain("ahead of this server's clock")
    const subscription = sns.sign({
      Type: "SubscriptionConfirmation",
      Message: "You have chosen to subscribe…",
      SubscribeURL: `${sns.base}/confirm?Action=ConfirmSubscription&Token=old`,
      Token: "old",
      Timestamp: ago(2 * 60 * MINUTE)
    })
    expect((await snsPost(s.app, subscription)).status).toBe(401)
    expect(sns.confirmations).toEqual([])
    await s.settled()
    expect(s.jobs).toEqual([])

    expect((await snsPost(s.app, dated(ago(50 * MINUTE)))).status).toBe(202)
    await s.settled()
    expect(await s.runs(prefix)).toBe(1)
  })

  test("the window follows the configured age", async () => {
    const sns = await fakeSns()
    const s = await server({ snsTopics: [sns.topic], snsUrl: new RegExp(sns.urlPattern), snsMaxAge: Duration.minutes(10) })
    const message = (minutes: number) =>
      sns.sign({ Type: "Notification", Message: JSON.stringify(testEvent(s.bucket)), Timestamp: ago(minutes * MINUTE) })
    const refused = await snsPost(s.app, message(15))
    expect(refused.status).toBe(401)
    expect(((await refused.json()) as { error: string }).error).toContain("more than 10m ago (LOADERS_SNS_MAX_AGE)")
    expect((await snsPost(s.app, message(5))).status).toBe(202)
  })
})

describe("health endpoints", () => {
  test("/healthz answers; /readyz checks S3 and the database", async () => {
    const s = await server()
    expect((await s.app.request("/healthz")).status).toBe(200)
    const ready = await s.app.request("/readyz")
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({ status: "ready" })
  })
})
