// Real clients deliver through the API — curl against presigned URLs, curl -T against the streaming
// PUT, tus-js-client with an upload cut halfway — and each delivery is processed and archived with
// the same report as the same files dropped straight into S3.
import { beforeAll, describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { execFile } from "node:child_process"
import { createHash } from "node:crypto"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Upload } from "tus-js-client"
import { Ledger } from "../../src/effects/Ledger.ts"
import { ObjectStore } from "../../src/effects/ObjectStore.ts"
import { offerDelivery } from "../../src/pipeline/deliveryJob.ts"
import type { DeliveryReport } from "../../src/pipeline/Report.ts"
import { apiServer, deliveryFiles, reportOutcome } from "../support/api.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"
import { within } from "../support/wait.ts"

const PART = 5 * 1024 * 1024
/**
 * `LOADERS_API_TEST_MB=100` sends deliveries of about that size through each way in (transactions
 * are ~200 bytes): the 100 MB runs, too slow for CI's bound on a test file
 * (`bun test --timeout 900000 test/api/clients.test.ts`).
 */
const LARGE = Number(process.env.LOADERS_API_TEST_MB ?? 0) * 5_300
/** Where each delivery's record numbers start, so that no two share a key (a shared key is loaded again, the slow way). */
const SPAN = Math.max(100_000, LARGE)
/** How long one upload may take. */
const BOUND = LARGE ? 600_000 : 30_000
const dir = mkdtempSync(join(tmpdir(), "loaders-api-clients-"))
const sha256 = (data: string | Uint8Array) => createHash("sha256").update(data).digest("hex")

type Files = ReturnType<typeof deliveryFiles>
/** A delivery's files, written where curl reads them; each delivery its own records (no key shared). */
const filesOf = (delivery: string, records: Parameters<typeof deliveryFiles>[0]) => {
  const files = deliveryFiles(records)
  mkdirSync(join(dir, delivery))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, delivery, name), text)
  return files
}
const sizeOf = (files: Files, name: string) => Buffer.byteLength(files[name as keyof Files])

/** The server partners deliver to, and a reference one on a database of its own where the same files are dropped into S3. */
let api: Awaited<ReturnType<typeof apiServer>>
let reference: Awaited<ReturnType<typeof apiServer>>

/** curl, run without blocking this process: the API's server answers from it. */
const curl = (...args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile("curl", ["-sS", "--fail-with-body", "--max-time", String(BOUND / 1000), ...args], (error, stdout, stderr) =>
      error ? reject(new Error(`curl ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout)))

const reportOf = (server: typeof api, delivery: string) =>
  server.runtime.runPromise(
    Effect.gen(function*() {
      const ledger = yield* Ledger
      const store = yield* ObjectStore
      const [entry] = yield* ledger.entries(store.bucket, "acme", delivery)
      return entry?.report as DeliveryReport
    })
  )

/** The same files dropped straight into the reference bucket, handed to its workers as an S3 event would be. */
const dropped = async (delivery: string, files: Files) => {
  const prefix = `incoming/acme/${delivery}/`
  await deposit(reference.client, reference.bucket, prefix, files)
  await reference.runtime.runPromise(
    ObjectStore.use((store) => offerDelivery({ bucket: store.bucket, prefix, partner: "acme", delivery }))
  )
  await reference.finished(delivery)
  return reportOutcome(await reportOf(reference, delivery))
}

const complete = async (delivery: string) => {
  const response = await fetch(`${api.base}/v1/deliveries/${delivery}/complete`, { method: "POST", headers: api.auth(api.keys.acme) })
  const body = (await response.json()) as { manifest: string; files: Array<{ name: string; size: number; sha256: string; dataset?: string }> }
  expect(response.status).toBe(202)
  return body
}

/** The API delivery ended as the direct drop of the same files did, and its computed manifest says what arrived. */
const expectLikeDropped = async (delivery: string, files: Files) => {
  const completed = await complete(delivery)
  expect(completed.manifest).toBe("computed")
  expect(completed.files.map(({ name, size, sha256 }) => ({ name, size, sha256 }))).toEqual(
    Object.keys(files).sort().map((name) => ({ name, size: sizeOf(files, name), sha256: sha256(files[name as keyof Files]) }))
  )
  const [status, direct] = await Promise.all([api.finished(delivery), dropped(delivery, files)])
  expect(status).toMatchObject({ delivery, state: "succeeded", files: 3 })
  expect(direct.status).toBe("succeeded")
  expect(reportOutcome(await reportOf(api, delivery))).toEqual(direct)
  // Archived with its manifest, nothing of the API's own left behind.
  const archived = await keysUnder(api.client, api.bucket, `success/acme/${delivery}/`)
  expect(archived.map((key) => key.replace(/^.*\/run-\d+\//, "")).sort()).toEqual(["_manifest.json", "_report.json", ...Object.keys(files)].sort())
  expect(await keysUnder(api.client, api.bucket, `incoming/acme/${delivery}/`)).toEqual([])
  expect(await keysUnder(api.client, api.bucket, "staging/tus/")).toEqual([])
}

beforeAll(async () => {
  ;[api, reference] = await Promise.all([apiServer({ partBytes: PART }, 2 * BOUND), apiServer({}, 2 * BOUND)])
})

describe("API deliveries by real clients", () => {
  test("curl PUTs each file to its presigned URL, the large one in presigned parts; complete assembles them", async () => {
    // About 5.5 MB of transactions: larger than a part, so the presigned route hands out parts.
    const files = filesOf("presigned", { properties: 300, transactions: LARGE || 28_000 })
    const opened = await fetch(`${api.base}/v1/deliveries`, {
      method: "POST",
      headers: { ...api.auth(api.keys.acme), "content-type": "application/json" },
      body: JSON.stringify({ delivery: "presigned", files: Object.keys(files).map((name) => ({ name, size: sizeOf(files, name) })) })
    })
    expect(opened.status).toBe(201)
    const body = (await opened.json()) as {
      files: Array<{ name: string; size: number; upload: { kind: "put"; url: string } | { kind: "multipart"; partSize: number; parts: Array<{ partNumber: number; size: number; url: string }> } }>
    }
    const kinds = Object.fromEntries(body.files.map((file) => [file.name, file.upload.kind]))
    expect(kinds).toEqual({ "properties.json": "put", "leases.json": "put", "transactions.ndjson": "multipart" })
    const state = await fetch(`${api.base}/v1/deliveries/presigned`, { headers: api.auth(api.keys.acme) }).then((r) => r.json())
    expect(state).toMatchObject({ state: "receiving", files: 0 })

    for (const file of body.files) {
      const path = join(dir, "presigned", file.name)
      if (file.upload.kind === "put") {
        // The size is part of the signature (real S3 refuses another Content-Length; s3rver checks no signature).
        expect(new URL(file.upload.url).searchParams.get("X-Amz-SignedHeaders")).toBe("content-length;host")
        await curl("-T", path, file.upload.url)
        continue
      }
      expect(file.upload.parts.reduce((sum, part) => sum + part.size, 0)).toBe(file.size)
      expect(file.upload.parts.slice(0, -1).every((part) => part.size === PART)).toBe(true)
      const bytes = Buffer.from(files[file.name as keyof Files])
      for (const part of file.upload.parts) {
        const partPath = `${path}.part${part.partNumber}`
        writeFileSync(partPath, bytes.subarray((part.partNumber - 1) * file.upload.partSize, (part.partNumber - 1) * file.upload.partSize + part.size))
        await curl("-T", partPath, part.url)
      }
    }
    await expectLikeDropped("presigned", files)
  })

  test("curl -T streams each file through the API (no opening call: the first file opens the delivery)", async () => {
    const files = filesOf("streamed", { properties: 100, transactions: LARGE || 5_000, from: SPAN })
    for (const name of Object.keys(files)) {
      const stored = JSON.parse(await curl("-T", join(dir, "streamed", name), "-H", `authorization: Bearer ${api.keys.acmeNext}`, `${api.base}/v1/deliveries/streamed/files/${name}`))
      expect(stored).toEqual({ delivery: "streamed", name, size: sizeOf(files, name), sha256: sha256(files[name as keyof Files]) })
    }
    await expectLikeDropped("streamed", files)
  })

  test("tus-js-client: an upload cut at 50% resumes from the server's offset and completes with the right SHA-256", async () => {
    const files = filesOf("resumed", { properties: 100, transactions: LARGE || 5_000, from: 2 * SPAN })
    const tusUpload = (name: string, options: { readonly uploadUrl?: string; readonly cutAt?: number } = {}) =>
      new Promise<{ url: string; firstProgress: number | undefined; cut: boolean }>((resolve, reject) => {
        const data = Buffer.from(files[name as keyof Files])
        let firstProgress: number | undefined
        const upload: Upload = new Upload(data, {
          endpoint: `${api.base}/v1/uploads`,
          ...(options.uploadUrl ? { uploadUrl: options.uploadUrl } : {}),
          headers: api.auth(api.keys.acme),
          metadata: { delivery: "resumed", filename: name },
          retryDelays: [],
          // The first half in a request of its own: the link drops once the server has taken it.
          ...(options.cutAt === undefined ? {} : { chunkSize: options.cutAt }),
          onProgress: (sent) => {
            firstProgress ??= sent
          },
          onChunkComplete: (_chunk, accepted) => {
            if (options.cutAt !== undefined && accepted >= options.cutAt) {
              void upload.abort().then(() => resolve({ url: upload.url ?? "", firstProgress, cut: true }))
            }
          },
          onSuccess: () => resolve({ url: upload.url ?? "", firstProgress, cut: false }),
          onError: reject
        })
        upload.start()
      })

    const big = "transactions.ndjson"
    const size = sizeOf(files, big)
    const first = await within(BOUND, () => "the first half of the tus upload", tusUpload(big, { cutAt: Math.ceil(size / 2) }))
    expect(first.cut).toBe(true)
    const head = await fetch(first.url, { method: "HEAD", headers: { ...api.auth(api.keys.acme), "tus-resumable": "1.0.0" } })
    expect(head.status).toBe(200)
    const offset = Number(head.headers.get("upload-offset"))
    expect(offset).toBe(Math.ceil(size / 2))
    // Not complete yet: complete refuses, and says which upload to resume.
    const early = await fetch(`${api.base}/v1/deliveries/resumed/complete`, { method: "POST", headers: api.auth(api.keys.acme) })
    expect(early.status).toBe(409)
    expect(((await early.json()) as { message: string }).message).toContain(`"${big}"`)

    const resumed = await within(BOUND, () => "the resumed tus upload", tusUpload(big, { uploadUrl: first.url }))
    expect(resumed.cut).toBe(false)
    // tus-js-client asked the server where to go on from and sent only the rest.
    expect(resumed.firstProgress).toBeGreaterThanOrEqual(offset)
    for (const name of Object.keys(files).filter((n) => n !== big)) await within(BOUND, () => `tus upload of ${name}`, tusUpload(name))
    await expectLikeDropped("resumed", files)
  })
})
