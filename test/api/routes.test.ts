// The API's refusals, each changing nothing; the errors CSV; and the OpenAPI document, validated and
// held to account: every operation it lists is called and answers a documented status and shape.
import { beforeAll, describe, expect, test } from "bun:test"
import { Validator } from "@seriousme/openapi-schema-validator"
import Ajv2020 from "ajv/dist/2020.js"
import { execFile } from "node:child_process"
import { Duration } from "effect"
import { Database } from "../../src/effects/Database.ts"
import { JobQueue } from "../../src/effects/JobQueue.ts"
import { reconcile } from "../../src/pipeline/reconcile.ts"
import { apiServer, deliveryFiles } from "../support/api.ts"
import { city, jsonArray, property } from "../support/fixtures.ts"
import { deposit, keysUnder } from "../support/pipeline.ts"

const MAX = 2 * 1024 * 1024
let api: Awaited<ReturnType<typeof apiServer>>

beforeAll(async () => {
  api = await apiServer({ maxFileBytes: MAX, ratePerMinute: 10_000 })
})

interface Answer {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

const call = async (path: string, init: RequestInit & { key?: string | null } = {}): Promise<Answer> => {
  const { key = api.keys.acme, ...rest } = init
  const headers = new Headers(rest.headers)
  if (key !== null) headers.set("authorization", `Bearer ${key}`)
  const response = await fetch(`${api.base}${path}`, { ...rest, headers })
  return { status: response.status, headers: response.headers, text: await response.text() }
}

/** curl with the path sent exactly as written (no `..` or `.` resolved), for names a URL parser would rewrite. */
const rawPut = (path: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) =>
    execFile(
      "curl",
      ["-sS", "--path-as-is", "--max-time", "30", "-X", "PUT", "--data-binary", "[]", "-H", `authorization: Bearer ${api.keys.acme}`, "-w", "\n%{http_code}", `${api.base}${path}`],
      (error, stdout) => {
        if (error) return reject(error)
        const at = stdout.lastIndexOf("\n")
        resolve({ status: Number(stdout.slice(at + 1)), body: stdout.slice(0, at) })
      }
    ))

/** Everything a refusal must leave as it was: the bucket's objects and the queue's jobs. */
const snapshot = async () => ({
  keys: await keysUnder(api.client, api.bucket, ""),
  jobs: (await api.runtime.runPromise(JobQueue.use((queue) => queue.list))).length
})

const refusedWith = (answer: Answer, status: number, code: string, says?: string) => {
  expect({ status: answer.status, text: answer.text }).toMatchObject({ status })
  const body = JSON.parse(answer.text) as { error: string; message: string }
  expect(body.error).toBe(code)
  if (says !== undefined) expect(body.message).toContain(says)
}

const json = (body: unknown): RequestInit => ({ method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) })

const tusCreate = (metadata: Record<string, string>, length: number, key?: string) =>
  call("/v1/uploads", {
    method: "POST",
    ...(key === undefined ? {} : { key }),
    headers: {
      "tus-resumable": "1.0.0",
      "upload-length": String(length),
      "upload-metadata": Object.entries(metadata).map(([k, v]) => `${k} ${Buffer.from(v).toString("base64")}`).join(",")
    }
  })

describe("refusals change nothing", () => {
  test("no key, an unknown key, a revoked key: 401; either of a partner's two keys works", async () => {
    const before = await snapshot()
    refusedWith(await call("/v1/deliveries", { key: null }), 401, "unauthorized", "no API key")
    refusedWith(await call("/v1/deliveries", { key: "lk_not-a-key" }), 401, "unauthorized", "unknown or revoked")
    refusedWith(await call("/v1/deliveries/d/files/properties.json", { method: "PUT", body: "[]", key: api.keys.revoked }), 401, "unauthorized")
    refusedWith(await tusCreate({ delivery: "d", filename: "properties.json" }, 2, api.keys.revoked), 401, "unauthorized")
    expect((await call("/v1/deliveries", { key: null })).headers.get("www-authenticate")).toBe("Bearer")
    expect(await snapshot()).toEqual(before)
    expect((await call("/v1/deliveries", { key: api.keys.acme })).status).toBe(200)
    expect((await call("/v1/deliveries", { key: api.keys.acmeNext })).status).toBe(200)
  })

  test("names with .., ., a slash, a backslash, control characters, a reserved name, or too long: 400", async () => {
    const before = await snapshot()
    const long = "x".repeat(129)
    for (
      const path of [
        "/v1/deliveries/d%00x/files/properties.json",
        "/v1/deliveries/d/files/a%0Ab.json",
        "/v1/deliveries/d%5Cx/files/properties.json",
        "/v1/deliveries/d/files/a%2Fb.json",
        "/v1/deliveries/a%2Fb/files/properties.json",
        "/v1/deliveries/d/files/_manifest.json",
        "/v1/deliveries/d/files/.hidden.json",
        `/v1/deliveries/${long}/files/properties.json`
      ]
    ) {
      const answer = await rawPut(path)
      expect({ path, status: answer.status }).toEqual({ path, status: 400 })
      expect(JSON.parse(answer.body)).toMatchObject({ error: "bad_request" })
    }
    // `.` and `..` segments of the path itself, even percent-encoded, are resolved by the URL
    // standard before the app routes the request: they name no delivery, and reach no route.
    for (
      const path of [
        "/v1/deliveries/%2E%2E/files/properties.json",
        "/v1/deliveries/../files/properties.json",
        "/v1/deliveries/./files/properties.json",
        "/v1/deliveries/d/files/..",
        "/v1/deliveries/d/files/%2e%2e"
      ]
    ) {
      const answer = await rawPut(path)
      expect({ path, status: answer.status }).toEqual({ path, status: 404 })
      expect(JSON.parse(answer.body)).toMatchObject({ error: "not_found" })
    }
    for (const body of [{ delivery: ".." }, { delivery: "a/b" }, { delivery: "tab\there" }, { delivery: "d", files: [{ name: "/etc/passwd", size: 1 }] }]) {
      refusedWith(await call("/v1/deliveries", json(body)), 400, "bad_request", "refused")
    }
    refusedWith(await call("/v1/deliveries", json({ delivery: "d", unknown: 1 })), 400, "bad_request", "unknown")
    refusedWith(await call("/v1/deliveries", { method: "POST", body: "{not json" }), 400, "bad_request", "not JSON")
    refusedWith(await call("/v1/deliveries", json({ delivery: "d", manifest: { partner: "globex", delivery: "d", files: [] } })), 400, "bad_request", "manifest")
    refusedWith(await tusCreate({ delivery: "..", filename: "properties.json" }, 2), 400, "bad_request", "refused")
    refusedWith(await tusCreate({ delivery: "d", filename: "../x.json" }, 2), 400, "bad_request", "refused")
    expect(await snapshot()).toEqual(before)
  })

  test("over a size bound: 413, and nothing stored, not even the delivery's opening", async () => {
    const before = await snapshot()
    refusedWith(await call("/v1/deliveries", json({ delivery: "big", files: [{ name: "properties.json", size: MAX + 1 }] })), 413, "too_large", "LOADERS_API_MAX_FILE_SIZE")
    const over = new Uint8Array(MAX + 1)
    refusedWith(await call("/v1/deliveries/big/files/properties.json", { method: "PUT", body: over }), 413, "too_large", `${MAX + 1} bytes`)
    // Without Content-Length: counted while it streams, and the upload abandoned past the bound.
    const chunked = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 5; i++) controller.enqueue(new Uint8Array(MAX / 4))
        controller.close()
      }
    })
    refusedWith(await call("/v1/deliveries/big/files/properties.json", { method: "PUT", body: chunked, duplex: "half" } as RequestInit), 413, "too_large")
    refusedWith(await tusCreate({ delivery: "big", filename: "properties.json" }, MAX + 1), 413, "too_large")
    refusedWith(await call("/v1/deliveries", { ...json({ delivery: "big", manifest: { pad: "x".repeat(1024 * 1024) } }) }), 413, "too_large", "request body")
    expect(await snapshot()).toEqual(before)

    // Larger than announced: by the streaming PUT at once; by a presigned PUT (which s3rver lets
    // through, checking no signature) at complete, before anything is sealed.
    const announced = await call("/v1/deliveries", json({ delivery: "announced", files: [{ name: "properties.json", size: 10 }, { name: "leases.json", size: 10 }] }))
    expect(announced.status).toBe(201)
    const opened = await snapshot()
    refusedWith(await call("/v1/deliveries/announced/files/properties.json", { method: "PUT", body: "x".repeat(11) }), 413, "too_large", "announced with 10 bytes")
    expect(await snapshot()).toEqual(opened)
    const urls = (JSON.parse(announced.text) as { files: Array<{ upload: { url: string } }> }).files.map((file) => file.upload.url)
    for (const url of urls) expect((await fetch(url, { method: "PUT", body: "y".repeat(11) })).status).toBe(200)
    const uploaded = await snapshot()
    refusedWith(await call("/v1/deliveries/announced/complete", { method: "POST" }), 413, "too_large", "announced with 10")
    expect(await snapshot()).toEqual(uploaded)
  })

  test("another partner's upload: 403; another partner's delivery is not even there for it: 404", async () => {
    const created = await tusCreate({ delivery: "fenced", filename: "properties.json" }, 2)
    expect(created.status).toBe(201)
    const location = created.headers.get("location") ?? ""
    const before = await snapshot()
    const globex = { key: api.keys.globex, headers: { "tus-resumable": "1.0.0" } }
    // A HEAD answer has no body: its status says it.
    expect((await call(new URL(location).pathname, { method: "HEAD", ...globex })).status).toBe(403)
    refusedWith(
      await call(new URL(location).pathname, {
        method: "PATCH",
        key: api.keys.globex,
        headers: { "tus-resumable": "1.0.0", "upload-offset": "0", "content-type": "application/offset+octet-stream" },
        body: "[]"
      }),
      403,
      "forbidden",
      "another partner"
    )
    refusedWith(await call("/v1/deliveries/fenced", { key: api.keys.globex }), 404, "not_found")
    refusedWith(await call("/v1/deliveries/fenced/complete", { method: "POST", key: api.keys.globex }), 404, "not_found")
    expect(await snapshot()).toEqual(before)
  })

  test("complete: the computed manifest names the dataset the partner's contract gives its own file names", async () => {
    const put = await call("/v1/deliveries/geo-1/files/GB.json", { method: "PUT", body: jsonArray([0, 1, 2].map(city)), key: api.keys.geo })
    expect(put.status).toBeLessThan(300)
    const completed = await call("/v1/deliveries/geo-1/complete", { method: "POST", key: api.keys.geo })
    expect(completed.status).toBeLessThan(300)
    const body = JSON.parse(completed.text) as { manifest: string; files: Array<{ name: string; dataset?: string }> }
    expect([body.manifest, body.files.map((f) => [f.name, f.dataset])]).toEqual(["computed", [["GB.json", "cities"]]])
    expect((await api.finished("geo-1", api.keys.geo)).state).toBe("succeeded")
  })

  test("a delivery not in a state for it: 409 (open twice, complete with a file missing, a file into a completed delivery)", async () => {
    expect((await call("/v1/deliveries", json({ delivery: "twice", files: [{ name: "properties.json", size: 2 }] }))).status).toBe(201)
    const before = await snapshot()
    refusedWith(await call("/v1/deliveries", json({ delivery: "twice" })), 409, "conflict", "open already")
    refusedWith(await call("/v1/deliveries/twice/complete", { method: "POST" }), 409, "conflict", `"properties.json" was announced but has not arrived`)
    // A folder dropped into the bucket with its manifest is complete: the API adds nothing to it.
    await deposit(api.client, api.bucket, "incoming/acme/sealed/", { "_manifest.json": "{}" })
    const sealed = await snapshot()
    refusedWith(await call("/v1/deliveries/sealed/files/properties.json", { method: "PUT", body: "[]" }), 409, "conflict", "takes no more files")
    refusedWith(await tusCreate({ delivery: "sealed", filename: "properties.json" }, 2), 409, "conflict", "takes no more files")
    expect(await snapshot()).toEqual(sealed)
    expect(sealed.keys.filter((key) => !before.keys.includes(key))).toEqual(["incoming/acme/sealed/_manifest.json"])
  })

  test("a delivery opened and never completed: after LOADERS_API_OPEN_EXPIRY the reconciliation scan fails it, archived with a report saying so", async () => {
    // Abandoned as soon as nothing new arrives: what a week of silence does by default.
    const expiring = await apiServer({}, 60_000, { receivingExpiry: Duration.zero })
    const send = (path: string, init: RequestInit = {}) =>
      fetch(`${expiring.base}${path}`, { ...init, headers: { ...expiring.auth(expiring.keys.acme), ...init.headers }, signal: AbortSignal.timeout(20_000) })
    const opened = await send("/v1/deliveries", json({ delivery: "gone", files: [{ name: "leases.json", size: 2 }] }))
    expect(opened.status).toBe(201)
    expect((await send("/v1/deliveries/gone/files/properties.json", { method: "PUT", body: jsonArray([property(1)]) })).status).toBeLessThan(300)

    const scan = await expiring.runtime.runPromise(reconcile())
    expect(scan.offered).toEqual(["incoming/acme/gone/"])
    const status = (await expiring.finished("gone")) as { state: string; report?: { status: string; reason: { en: string }; totals: { read: number; loaded: number } } }
    expect(status.state).toBe("failed")
    expect(status.report?.reason.en).toStartWith("This delivery was opened through the API but never completed: nothing arrived for 0 since ")
    expect(status.report?.totals).toMatchObject({ read: 0, loaded: 0 })
    // Everything received is kept for audit under failure/, the API's marker included; nothing is left to complete.
    const archived = await keysUnder(expiring.client, expiring.bucket, "failure/acme/gone/")
    expect(archived.map((key) => key.replace(/run-[^/]+\//, "run/")).sort()).toEqual(
      ["_receiving.json", "_report.json", "properties.json"].map((name) => `failure/acme/gone/run/${name}`)
    )
    expect(await keysUnder(expiring.client, expiring.bucket, "incoming/acme/gone/")).toEqual([])
    expect((await send("/v1/deliveries/gone/complete", { method: "POST" })).status).toBe(404)
    const rows = await expiring.runtime.runPromise(Database.use((db) => db.query<{ n: number }>("SELECT count(*)::int AS n FROM loaders.properties")))
    expect(rows).toEqual([{ n: 0 }])
  })

  test("over the partner's rate: 429 with Retry-After, other partners unaffected", async () => {
    const limited = await apiServer({ ratePerMinute: 3 })
    const get = (key: string) => fetch(`${limited.base}/v1/deliveries`, { headers: limited.auth(key) })
    for (let i = 0; i < 3; i++) expect((await get(limited.keys.acme)).status).toBe(200)
    const refused = await get(limited.keys.acmeNext)
    expect(refused.status).toBe(429)
    expect(Number(refused.headers.get("retry-after"))).toBeGreaterThanOrEqual(1)
    expect(await refused.json()).toMatchObject({ error: "rate_limited" })
    expect((await get(limited.keys.globex)).status).toBe(200)
  })
})

test("a lenient delivery's rejections: GET links its errors CSV, which holds every one, in the partner's language or the one asked", async () => {
  const records = Array.from({ length: 30 }, (_, i) => property(300_000 + i))
  const broken = records.map((record, i) => (i % 10 === 3 ? { ...record, surface_m2: "large" } : record))
  const text = JSON.stringify(broken)
  const manifest = { partner: "acme", delivery: "lenient", policy: "lenient", files: [{ name: "properties.json", dataset: "properties" }] }
  expect((await call("/v1/deliveries", json({ delivery: "lenient", manifest }))).status).toBe(201)
  expect((await call("/v1/deliveries/lenient/files/properties.json", { method: "PUT", body: text })).status).toBe(201)
  const completed = await call("/v1/deliveries/lenient/complete", { method: "POST" })
  expect(JSON.parse(completed.text)).toMatchObject({ manifest: "partner" })
  const status = (await api.finished("lenient")) as { state: string; report: { totals: { rejected: number } }; links: { errors: string } }
  expect(status.state).toBe("succeeded")
  expect(status.report.totals.rejected).toBe(3)
  const english = await call(status.links.errors)
  expect(english.status).toBe(200)
  expect(english.headers.get("content-type")).toContain("text/csv")
  const lines = english.text.replace(/^\uFEFF/, "").trimEnd().split("\r\n")
  expect(lines[0]).toBe("file,record,line,byte,path,rule,message,value")
  expect(lines.slice(1).map((line) => line.split(",")[1])).toEqual(["3", "13", "23"])
  const french = await call(`${status.links.errors}?language=fr`)
  expect(french.text.replace(/^\uFEFF/, "").split("\r\n")[0]).toBe("fichier;enregistrement;ligne;octet;chemin;règle;message;valeur")
  refusedWith(await call(status.links.errors, { key: api.keys.globex }), 404, "not_found")
})

describe("OpenAPI", () => {
  test("/v1/openapi.json is a valid OpenAPI 3.1 document, served without a key", async () => {
    const answer = await call("/v1/openapi.json", { key: null })
    expect(answer.status).toBe(200)
    const result = await new Validator().validate(JSON.parse(answer.text) as Record<string, unknown>)
    expect(result.errors ?? []).toEqual([])
    expect(result.valid).toBe(true)
  })

  test("every operation it lists answers a documented status with a body of the documented shape", async () => {
    type Operation = { responses: Record<string, { content?: Record<string, { schema: unknown }> }> }
    const document = JSON.parse((await call("/v1/openapi.json")).text) as { paths: Record<string, Record<string, Operation & { operationId: string }>> }
    const ajv = new Ajv2020({ strict: false })
    const files = deliveryFiles({ properties: 5, transactions: 5, from: 400_000 })
    let upload = ""
    // One real call per operation, in an order that walks a delivery from opening to its report.
    const calls: Record<string, () => Promise<Answer>> = {
      openapi: () => call("/v1/openapi.json", { key: null }),
      openDelivery: () => call("/v1/deliveries", json({ delivery: "documented", files: [{ name: "properties.json", size: Buffer.byteLength(files["properties.json"]) }] })),
      putFile: () => call("/v1/deliveries/documented/files/properties.json", { method: "PUT", body: files["properties.json"] }),
      createUpload: async () => {
        const answer = await tusCreate({ delivery: "documented", filename: "leases.json" }, Buffer.byteLength(files["leases.json"]))
        upload = new URL(answer.headers.get("location") ?? "").pathname
        return answer
      },
      uploadChunk: () =>
        call(upload, {
          method: "PATCH",
          headers: { "tus-resumable": "1.0.0", "upload-offset": "0", "content-type": "application/offset+octet-stream" },
          body: files["leases.json"]
        }),
      uploadOffset: () => call(upload, { method: "HEAD", headers: { "tus-resumable": "1.0.0" } }),
      terminateUpload: async () => {
        const dropped = await tusCreate({ delivery: "documented", filename: "transactions.ndjson" }, 10)
        return call(new URL(dropped.headers.get("location") ?? "").pathname, { method: "DELETE", headers: { "tus-resumable": "1.0.0" } })
      },
      getDelivery: () => call("/v1/deliveries/documented"),
      completeDelivery: () => call("/v1/deliveries/documented/complete", { method: "POST" }),
      listDeliveries: () => call("/v1/deliveries"),
      getDeliveryErrors: async () => {
        await api.finished("documented")
        return call("/v1/deliveries/documented/errors.csv")
      }
    }
    const operations = Object.entries(document.paths).flatMap(([path, methods]) =>
      Object.entries(methods).map(([method, operation]) => ({ path, method, operation }))
    )
    expect(operations.map(({ operation }) => operation.operationId).sort()).toEqual(Object.keys(calls).sort())
    const order = Object.keys(calls)
    for (const { path, method, operation } of operations.sort((a, b) => order.indexOf(a.operation.operationId) - order.indexOf(b.operation.operationId))) {
      const answer = await calls[operation.operationId]!()
      const documented = operation.responses[String(answer.status)]
      expect({ operation: `${method.toUpperCase()} ${path}`, status: answer.status, documented: documented !== undefined, text: documented ? "" : answer.text })
        .toEqual({ operation: `${method.toUpperCase()} ${path}`, status: answer.status, documented: true, text: "" })
      const schema = documented?.content?.["application/json"]?.schema
      if (schema === undefined) continue
      const validate = ajv.compile(schema as object)
      const valid = validate(JSON.parse(answer.text))
      expect({ operation: operation.operationId, errors: valid ? null : validate.errors }).toEqual({ operation: operation.operationId, errors: null })
    }
    // Refusals have the documented shape too.
    const refusal = (await call("/v1/deliveries", { key: null })).text
    const errorSchema = document.paths["/v1/deliveries"]!.get!.responses["401"]!.content!["application/json"]!.schema
    expect(ajv.validate(errorSchema as object, JSON.parse(refusal))).toBe(true)
  })
})
