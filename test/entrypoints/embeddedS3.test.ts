import { afterAll, describe, expect, test } from "bun:test"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { aws, holdPort, runEntrypoint } from "../support/cli.ts"
import { startServer } from "../support/server.ts"
import { until } from "../support/wait.ts"
import { seedEmbedded } from "../support/pglite.ts"

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-embedded-"))
  dirs.push(dir)
  return dir
}

/** The embedded defaults, all kept under `dir`. */
const embedded = (dir: string): Record<string, string> => ({ LOADERS_EMBEDDED_DIR: dir, LOADERS_OUTBOX_DIR: join(dir, "outbox") })

/** The line the app logs when its embedded S3 starts: endpoint and credentials (quotes escaped in JSON). */
const ANNOUNCED = /Embedded S3 at (http:\/\/127\.0\.0\.1:\d+)[^,]*, bucket \\?"loaders\\?": AWS_ACCESS_KEY_ID=(\S+) AWS_SECRET_ACCESS_KEY=([^\s"]+)"/

describe("the embedded S3 of the app", () => {
  test("serve announces it on LOADERS_EMBEDDED_S3_PORT with its credentials; the AWS CLI drops a delivery there as the README shows", async () => {
    const dir = seedEmbedded(fresh())
    const free = await holdPort()
    await free.close()
    const server = await startServer("Bun", {
      ...embedded(dir),
      LOADERS_PGLITE_DIR: join(dir, "pglite"),
      LOADERS_EMBEDDED_S3_PORT: String(free.port),
      LOADERS_LOG_FORMAT: "json"
    })
    try {
      const announced = server.output().match(ANNOUNCED)
      expect(announced?.[1]).toBe(`http://127.0.0.1:${free.port}`)
      const [, endpoint, id, secret] = announced!
      const delivery = fresh()
      writeFileSync(join(delivery, "properties.json"), "[]")
      const put = aws(endpoint!, { id: id!, secret: secret! }, ["s3", "cp", "--recursive", delivery, "s3://loaders/incoming/acme/2026-12-01/"])
      expect(put.err).toBe("")
      expect(put.status).toBe(0)
      const listed = aws(endpoint!, { id: id!, secret: secret! }, ["s3", "ls", "--recursive", "s3://loaders/incoming/acme/"])
      expect(listed.out).toContain("incoming/acme/2026-12-01/properties.json")
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 120_000)

  test("serve takes its embedded S3's own events: a delivery copied in with the AWS CLI is processed, no webhook posted", async () => {
    const dir = seedEmbedded(fresh())
    const server = await startServer("Bun", {
      ...embedded(dir),
      LOADERS_PGLITE_DIR: join(dir, "pglite"),
      LOADERS_EMBEDDED_S3_PORT: "0",
      LOADERS_LOG_FORMAT: "json",
      // Neither the scan nor a webhook: only the events can bring the delivery to the workers.
      LOADERS_RECONCILE_INTERVAL: "off"
    })
    try {
      expect(server.output()).toContain("serve takes the embedded S3's object-created events itself")
      const [, endpoint, id, secret] = server.output().match(ANNOUNCED)!
      const credentials = { id: id!, secret: secret! }
      const examples = join(import.meta.dir, "../../examples/acme-gestion/2026-11-01/")
      const put = aws(endpoint!, credentials, ["s3", "cp", "--recursive", examples, "s3://loaders/incoming/acme-gestion/2026-12-01/"])
      expect(put.status).toBe(0)
      // The worker logs the outcome last, once the folder is archived and its sources deleted.
      await until(45_000, () => `the delivery was not processed:\n${server.output()}`, async () =>
        server.output().includes("incoming/acme-gestion/2026-12-01/: succeeded") ? true : undefined)
      const archived = aws(endpoint!, credentials, ["s3", "ls", "--recursive", "s3://loaders/success/acme-gestion/2026-12-01/"])
      expect(archived.out).toContain("_report.json")
      const left = aws(endpoint!, credentials, ["s3", "ls", "--recursive", "s3://loaders/incoming/acme-gestion/2026-12-01/"])
      expect(left.out).toBe("")
      // The archive's own copies are events too: ignored, so the delivery ran once.
      expect(server.output().match(/incoming\/acme-gestion\/2026-12-01\/: \w+/g)).toEqual(["incoming/acme-gestion/2026-12-01/: succeeded"])
    } finally {
      expect(await server.stop()).toBe(0)
    }
  }, 120_000)

  test("LOADERS_EMBEDDED_S3_PORT on a port in use: one line naming it, exit 2", async () => {
    const taken = await holdPort()
    try {
      const run = runEntrypoint("batch.ts", [], { ...embedded(seedEmbedded(fresh())), LOADERS_EMBEDDED_S3_PORT: String(taken.port) })
      expect(run.status).toBe(2)
      const lines = run.err.trim().split("\n")
      expect(lines).toHaveLength(1)
      expect(lines[0]).toContain(`port ${taken.port} (LOADERS_EMBEDDED_S3_PORT) is in use by another process`)
    } finally {
      await taken.close()
    }
  }, 120_000)

  test("LOADERS_EMBEDDED_S3_PORT that is no port: one line naming it, exit 2", () => {
    const run = runEntrypoint("batch.ts", [], { ...embedded(fresh()), LOADERS_EMBEDDED_S3_PORT: "70000" })
    expect(run.status).toBe(2)
    expect(run.err.trim()).toBe(
      "loaders batch could not run: embedded S3 server: LOADERS_EMBEDDED_S3_PORT must be a port number (0 to 65535, 0: any free port), got 70000"
    )
  }, 120_000)

  test("the default port 4569, when in use, gives way to a free one and says so", async () => {
    // Held here, or by another process: either way the run cannot have it.
    const held = await holdPort(4569)
    try {
      const run = runEntrypoint("batch.ts", [], { ...embedded(seedEmbedded(fresh())), LOADERS_LOG_FORMAT: "json" })
      expect(run.status).toBe(0)
      const announced = run.out.match(ANNOUNCED)
      expect(announced?.[1]).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
      expect(announced?.[1]).not.toBe("http://127.0.0.1:4569")
      expect(run.out).toContain("(port 4569 is in use; LOADERS_EMBEDDED_S3_PORT picks another)")
      expect(run.out).toContain("succeeded  acme-gestion/2026-11-01")
    } finally {
      await held.close()
    }
  }, 120_000)
})
