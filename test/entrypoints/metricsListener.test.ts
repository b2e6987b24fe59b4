import { describe, expect, test } from "bun:test"
import { spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { freePort, serverEnv, startWorker } from "../support/server.ts"
import { within } from "../support/wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const TOKEN = "listener-test-token"

describe("the worker's metrics listener (LOADERS_METRICS_PORT)", () => {
  test("GET /metrics answers Prometheus' text with the bearer token, 401 naming the variable without it; /healthz answers", async () => {
    const { s3, bucket } = await freshBucket()
    const port = await freePort()
    const worker = await startWorker({
      ...serverEnv(s3, bucket, await freshDatabase()),
      LOADERS_METRICS_PORT: String(port),
      LOADERS_METRICS_TOKEN: TOKEN,
      LOADERS_QUEUE_METRICS_INTERVAL: "200 millis",
      LOADERS_LOG_FORMAT: "json"
    })
    const base = `http://127.0.0.1:${port}`
    expect(worker.output()).toContain(`metrics: ${base}/metrics (LOADERS_METRICS_PORT)`)
    const attempts: Array<Record<string, string>> = [{}, { authorization: "Bearer wrong" }, { authorization: TOKEN }]
    for (const headers of attempts) {
      const refused = await fetch(`${base}/metrics`, { headers })
      expect(refused.status).toBe(401)
      expect(refused.headers.get("www-authenticate")).toBe("Bearer")
      expect(await refused.json()).toEqual({ error: "GET /metrics needs Authorization: Bearer <LOADERS_METRICS_TOKEN>" })
    }
    const scrape = async () => {
      const response = await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } })
      expect(response.status).toBe(200)
      expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8")
      return response.text()
    }
    // The queue gauges appear once the first count is done.
    let text = await scrape()
    for (let i = 0; !text.includes("loaders_queue_dead_letters"); i++) {
      if (i > 100) throw new Error(`no queue gauges in:\n${text}\n${worker.output()}`)
      await Bun.sleep(100)
      text = await scrape()
    }
    expect(text).toMatch(/^# TYPE loaders_queue_depth gauge$/m)
    expect(text).toMatch(/^loaders_delivery_faults_total\{[^}]*\} 0$/m)
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    expect(await worker.stop()).toBe(0)
  }, 60_000)

  test("a port already taken stops the worker at start with one line naming the variable", async () => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve))
    const address = taken.address()
    const port = typeof address === "object" && address ? address.port : 0
    const { s3, bucket } = await freshBucket()
    let stderr = ""
    const child = spawn(process.execPath, ["src/entrypoints/worker.ts"], {
      cwd: ROOT,
      env: { ...process.env, ...serverEnv(s3, bucket, await freshDatabase()), LOADERS_METRICS_PORT: String(port), LOADERS_LOG_FORMAT: "json" },
      stdio: ["ignore", "ignore", "pipe"]
    })
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    const code = await within(30_000, () => `the worker did not stop:\n${stderr}`, new Promise((resolve) => child.once("exit", resolve)))
    taken.close()
    expect(code).toBe(2)
    const lines = stderr.trim().split("\n")
    expect(lines).toHaveLength(1)
    expect(lines[0]).toStartWith(`loaders worker could not run: LOADERS_METRICS_PORT=${port}: cannot listen on 127.0.0.1:${port} (`)
    expect(lines[0]).toEndWith("); expected a free port")
  }, 60_000)
})
