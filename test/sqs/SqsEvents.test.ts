import { afterAll, describe, expect, test } from "bun:test"
import { Duration, Effect, Layer, Logger, ManagedRuntime } from "effect"
import { connect, createServer, type Socket } from "node:net"
import { Database } from "../../src/effects/Database.ts"
import { JobQueue } from "../../src/effects/JobQueue.ts"
import * as PgBossJobQueue from "../../src/effects/pgboss/PgBossJobQueue.ts"
import { SqsQueue } from "../../src/effects/SqsQueue.ts"
import { handleDeliveryJob } from "../../src/pipeline/deliveryJob.ts"
import * as SqsEvents from "../../src/sqs/SqsEvents.ts"
import { awsEvent, eventBridgeEvent, minioEvent, testEvent } from "../support/events.ts"
import { fastJobQueue } from "../support/jobQueue.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { databases, deposit, keysUnder, pipelineFixture } from "../support/pipeline.ts"
import { freshQueue, sqsCredentials, sqsServer } from "../support/sqs.ts"
import { until } from "../support/wait.ts"

const disposers: Array<() => Promise<void>> = []
afterAll(async () => {
  for (const dispose of disposers.splice(0).reverse()) await dispose()
})

interface Line {
  readonly level: string
  readonly message: string
}

/**
 * The SQS poller and two workers in-process, on pg-boss in a fresh PostgreSQL database and a fresh
 * bucket, reaching SQS at `endpoint`; every log line kept.
 */
const harness = async (endpoint: string, queueUrl: string) => {
  const fixture = await pipelineFixture(databases.PostgreSQL())
  const lines: Array<Line> = []
  const logger = Logger.layer([
    Logger.make((log) => {
      lines.push({ level: log.logLevel, message: String(Array.isArray(log.message) ? log.message[0] : log.message) })
    })
  ])
  const workers = Layer.effectDiscard(
    JobQueue.use((queue) => Effect.forkScoped(queue.take(handleDeliveryJob, { workers: 2, perGroup: 2 })))
  )
  const poller = SqsEvents.layer.pipe(
    Layer.provide(SqsQueue.layerWith({ queueUrl, endpoint, credentials: sqsCredentials, wait: Duration.seconds(1) }))
  )
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(poller, workers).pipe(
      Layer.provideMerge(PgBossJobQueue.layerWith(fastJobQueue)),
      Layer.provideMerge(fixture.layer),
      Layer.provideMerge(logger)
    )
  )
  disposers.push(() => runtime.dispose())
  await runtime.runPromise(Effect.void)
  /** Ledger runs per delivery folder. */
  const runs = () =>
    runtime.runPromise(
      Database.use((db) => db.query<{ prefix: string; n: number }>(`SELECT prefix, count(*)::int AS n FROM loaders.delivery_runs GROUP BY prefix`))
        .pipe(Effect.map((rows) => new Map(rows.map((row) => [row.prefix, row.n]))))
    )
  const idle = async () => {
    const n = await runtime.runPromise(JobQueue.use((queue) => queue.counts))
    return n.waiting + n.retrying + n.running === 0
  }
  return { ...fixture, runtime, lines, runs, idle }
}

/** Shuffled in place, Fisher–Yates. */
const shuffle = <A>(items: Array<A>): Array<A> => {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}

describe("SQS poller (fauxqs with the real SDK, pg-boss on PostgreSQL, s3rver)", () => {
  test("100 messages (S3 and SNS-wrapped, duplicates) for 20 deliveries: each delivery runs once, every message is deleted, malformed ones end in the dead-letter queue", async () => {
    const server = await sqsServer()
    const queue = await freshQueue(server, { visibilityTimeout: 2, maxReceiveCount: 3 })
    const h = await harness(server.address, queue.queueUrl)

    const prefixes: Array<string> = []
    for (const partner of ["acme", "bolt", "cobalt", "delta"]) {
      for (let d = 1; d <= 5; d++) {
        const prefix = `incoming/${partner}/d${d}/`
        await deposit(h.client, h.bucket, prefix, { "properties.json": jsonArray([0, 1, 2].map(property)) })
        prefixes.push(prefix)
      }
    }
    // Five messages a delivery: one S3 event twice (S3 delivers at least once), another through
    // SNS, an EventBridge event, and MinIO's shape through SNS.
    const direct: Array<string> = []
    const viaSns: Array<string> = []
    for (const prefix of prefixes) {
      const key = `${prefix}properties.json`
      const again = JSON.stringify(awsEvent(h.bucket, [key]))
      direct.push(again, again, JSON.stringify(eventBridgeEvent(h.bucket, key)))
      viaSns.push(JSON.stringify(awsEvent(h.bucket, [key])), JSON.stringify(minioEvent(h.bucket, key)))
    }
    expect(direct.length + viaSns.length).toBe(100)
    const malformed = [
      "{not json",
      JSON.stringify({ hello: "world" }),
      JSON.stringify(awsEvent("another-bucket", [`${prefixes[0]}properties.json`]))
    ]
    const started = performance.now()
    await queue.send(shuffle([...direct, ...malformed, JSON.stringify(testEvent(h.bucket))]))
    for (const message of shuffle(viaSns)) await queue.publish(message)

    const state = { runs: new Map<string, number>(), depth: { visible: -1, inFlight: -1 }, dead: -1 }
    await until(60_000, () => `runs ${JSON.stringify([...state.runs])}, queue ${JSON.stringify(state.depth)}, dead letters ${state.dead}; log:\n${h.lines.map((l) => `${l.level} ${l.message}`).join("\n")}`, async () => {
      state.runs = await h.runs()
      state.depth = await queue.depth()
      state.dead = (await queue.depth(queue.dlqUrl)).visible
      const done = prefixes.every((prefix) => state.runs.get(prefix) === 1) && state.depth.visible + state.depth.inFlight === 0 &&
        state.dead === malformed.length && (await h.idle())
      return done ? true : undefined
    })
    const elapsed = performance.now() - started
    console.log(`sqs: 104 messages, 20 deliveries, 3 dead letters in ${(elapsed / 1000).toFixed(1)} s`)

    // Exactly one run for each delivery, and one archive of it.
    expect([...state.runs.keys()].sort()).toEqual([...prefixes].sort())
    expect([...state.runs.values()].every((n) => n === 1)).toBe(true)
    for (const prefix of prefixes) {
      const archived = await keysUnder(h.client, h.bucket, prefix.replace(/^incoming\//, "success/"))
      expect(new Set(archived.map((key) => key.split("/")[3]))).toEqual(new Set([expect.stringMatching(/^run-/)]))
      expect(await keysUnder(h.client, h.bucket, prefix)).toEqual([])
    }
    // The malformed messages, and only they, went to the dead-letter queue, each logged once
    // though received maxReceiveCount times.
    expect((await queue.deadLetters()).sort()).toEqual([...malformed].sort())
    const reports = h.lines.filter((line) => line.level === "Error" && line.message.startsWith("SQS message"))
    expect(reports.length).toBe(malformed.length)
    expect(reports.map((line) => line.message).join("\n")).toContain("is not valid JSON")
    expect(reports.map((line) => line.message).join("\n")).toContain('bucket "another-bucket" is refused')
    expect(h.lines.filter((line) => line.level === "Error" && !line.message.startsWith("SQS message"))).toEqual([])
  }, 90_000)

  test("SQS unreachable: retried with backoff, one warning for the outage and one line when it ends; then events flow", async () => {
    const server = await sqsServer()
    const queue = await freshQueue(server, { visibilityTimeout: 5, maxReceiveCount: 3 })
    // A door in front of the server: while shut it resets every connection, as an unreachable SQS would.
    let open = false
    let refused = 0
    const sockets = new Set<Socket>()
    const door = createServer((socket) => {
      sockets.add(socket)
      socket.on("close", () => sockets.delete(socket))
      if (!open) {
        refused++
        socket.destroy()
        return
      }
      const upstream = connect(server.port, "127.0.0.1")
      sockets.add(upstream)
      upstream.on("close", () => sockets.delete(upstream))
      socket.pipe(upstream).pipe(socket)
      socket.on("error", () => upstream.destroy())
      upstream.on("error", () => socket.destroy())
    })
    await new Promise<void>((resolve) => door.listen(0, "127.0.0.1", resolve))
    disposers.push(async () => {
      for (const socket of sockets) socket.destroy()
      await new Promise((resolve) => door.close(resolve))
    })
    const address = door.address()
    if (address === null || typeof address === "string") throw new Error("the door has no port")
    const h = await harness(`http://127.0.0.1:${address.port}`, queue.queueUrl)

    await until(20_000, () => `${refused} receives refused`, async () => (refused >= 3 ? true : undefined))
    open = true
    const prefix = "incoming/acme/after-outage/"
    await deposit(h.client, h.bucket, prefix, { "properties.json": jsonArray([property(1)]) })
    await queue.send([JSON.stringify(awsEvent(h.bucket, [`${prefix}properties.json`]))])
    await until(30_000, () => `runs of ${prefix}`, async () => ((await h.runs()).get(prefix) === 1 ? true : undefined))
    await until(10_000, () => "the message deleted", async () => {
      const depth = await queue.depth()
      return depth.visible + depth.inFlight === 0 ? true : undefined
    })

    const warnings = h.lines.filter((line) => line.level === "Warn" && line.message.startsWith("SQS:"))
    expect(warnings.length).toBe(1)
    expect(warnings[0]!.message).toContain("ReceiveMessage")
    const ended = h.lines.filter((line) => line.message.includes("answers again"))
    expect(ended.length).toBe(1)
    const tries = Number(/after (\d+) failed tr/.exec(ended[0]!.message)?.[1])
    expect(tries).toBeGreaterThanOrEqual(3)
  }, 60_000)
})
