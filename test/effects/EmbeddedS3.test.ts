import { afterAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { startEmbeddedS3 } from "../../src/effects/EmbeddedS3.ts"
import { aws, holdPort } from "../support/cli.ts"
import { runScoped } from "../support/effect.ts"

const dirs: Array<string> = []
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})
const fresh = () => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-embedded-s3-"))
  dirs.push(dir)
  return dir
}

const S3RVER = { id: "S3RVER", secret: "S3RVER" }

describe("the embedded S3 server", () => {
  test("listens on the port asked, where the AWS CLI puts and lists objects", async () => {
    const free = await holdPort()
    await free.close()
    const source = join(fresh(), "properties.json")
    await Bun.write(source, "[]")
    await runScoped(
      Effect.gen(function*() {
        const s3 = yield* startEmbeddedS3({ directory: fresh(), buckets: ["loaders"], port: free.port })
        expect(s3.port).toBe(free.port)
        expect(s3.endpoint).toBe(`http://127.0.0.1:${free.port}`)
        const endpoint = `http://127.0.0.1:${free.port}`
        const put = aws(endpoint, S3RVER, ["s3", "cp", source, "s3://loaders/incoming/acme/d1/properties.json"])
        expect(put.err).toBe("")
        expect(put.status).toBe(0)
        const listed = aws(endpoint, S3RVER, ["s3", "ls", "--recursive", "s3://loaders/incoming/"])
        expect(listed.status).toBe(0)
        expect(listed.out).toContain("incoming/acme/d1/properties.json")
      })
    )
  }, 60_000)

  test("a port in use fails with one line naming LOADERS_EMBEDDED_S3_PORT", async () => {
    const taken = await holdPort()
    try {
      const error = await runScoped(Effect.flip(startEmbeddedS3({ directory: fresh(), buckets: ["loaders"], port: taken.port })))
      expect(error._tag).toBe("EmbeddedS3PortTaken")
      expect(error.message).toBe(
        `embedded S3 server: port ${taken.port} (LOADERS_EMBEDDED_S3_PORT) is in use by another process: ` +
          "stop that process, or set LOADERS_EMBEDDED_S3_PORT to a free port (0: any free port)"
      )
    } finally {
      await taken.close()
    }
  }, 60_000)

  test("with fallback, a port in use is replaced by a free one that answers", async () => {
    const taken = await holdPort()
    try {
      await runScoped(
        Effect.gen(function*() {
          const s3 = yield* startEmbeddedS3({ directory: fresh(), buckets: ["loaders"], port: taken.port, fallback: true })
          expect(s3.port).not.toBe(taken.port)
          const listed = aws(s3.endpoint, S3RVER, ["s3", "ls", "s3://loaders/"])
          expect(listed.status).toBe(0)
        })
      )
    } finally {
      await taken.close()
    }
  }, 60_000)
})
