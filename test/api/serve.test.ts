// The API served by the real launchers, Bun and Deno: a delivery sent through each way in (presigned
// PUT, streaming PUT, tus), completed, processed by the server's own workers, its status read back.
import { describe, expect, test } from "bun:test"
import { execFile } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { hashApiKey, newApiKey } from "../../schemas/ApiKey.ts"
import { deliveryFiles } from "../support/api.ts"
import { keysUnder } from "../support/pipeline.ts"
import { freshDatabase } from "../support/postgres.ts"
import { freshBucket } from "../support/s3.ts"
import { launchers, type Runtime, serverEnv, startServer } from "../support/server.ts"
import { until } from "../support/wait.ts"

const curl = (...args: ReadonlyArray<string>) =>
  new Promise<string>((resolve, reject) =>
    execFile("curl", ["-sS", "--fail-with-body", "--max-time", "30", ...args], (error, stdout, stderr) =>
      error ? reject(new Error(`curl ${args.join(" ")}: ${error.message}\n${stdout}${stderr}`)) : resolve(stdout)))

for (const runtime of Object.keys(launchers) as Array<Runtime>) {
  describe(`the API served by ${runtime}`, () => {
    test("presigned PUT, streaming PUT and tus into one delivery; complete; processed; status and list", async () => {
      const { s3, client, bucket } = await freshBucket()
      const dir = mkdtempSync(join(tmpdir(), "loaders-api-serve-"))
      const key = newApiKey()
      writeFileSync(join(dir, "partners.json"), JSON.stringify({ acme: { apiKeys: [hashApiKey(key)] } }))
      const server = await startServer(runtime, { ...serverEnv(s3, bucket, await freshDatabase()), LOADERS_PARTNERS_FILE: join(dir, "partners.json") })
      const auth = { authorization: `Bearer ${key}` }
      const files = deliveryFiles({ properties: 20, transactions: 50 })
      for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)

      const opened = await fetch(`${server.base}/v1/deliveries`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify({ delivery: "smoke", files: [{ name: "properties.json", size: Buffer.byteLength(files["properties.json"]) }] })
      })
      expect(opened.status).toBe(201)
      const { files: [presigned] } = (await opened.json()) as { files: Array<{ upload: { url: string } }> }
      await curl("-T", join(dir, "properties.json"), presigned!.upload.url)
      await curl("-T", join(dir, "transactions.ndjson"), "-H", `authorization: Bearer ${key}`, `${server.base}/v1/deliveries/smoke/files/transactions.ndjson`)
      const leases = Buffer.from(files["leases.json"])
      const created = await fetch(`${server.base}/v1/uploads`, {
        method: "POST",
        headers: {
          ...auth,
          "tus-resumable": "1.0.0",
          "upload-length": String(leases.length),
          "upload-metadata": `delivery ${Buffer.from("smoke").toString("base64")},filename ${Buffer.from("leases.json").toString("base64")}`
        }
      })
      expect(created.status).toBe(201)
      const patched = await fetch(created.headers.get("location")!, {
        method: "PATCH",
        headers: { ...auth, "tus-resumable": "1.0.0", "upload-offset": "0", "content-type": "application/offset+octet-stream" },
        body: leases
      })
      expect([patched.status, patched.headers.get("upload-offset")]).toEqual([204, String(leases.length)])

      const completed = await fetch(`${server.base}/v1/deliveries/smoke/complete`, { method: "POST", headers: auth })
      expect(completed.status).toBe(202)
      const status = await until(60_000, () => `smoke delivery on ${runtime}\n${server.output()}`, async () => {
        const answer = (await (await fetch(`${server.base}/v1/deliveries/smoke`, { headers: auth })).json()) as { state: string }
        return answer.state === "succeeded" || answer.state === "failed" ? answer : undefined
      })
      expect(status).toMatchObject({ state: "succeeded", files: 3, report: { totals: { read: 90, loaded: 90, rejected: 0 } } })
      const list = await (await fetch(`${server.base}/v1/deliveries`, { headers: auth })).json()
      expect(list).toEqual({ deliveries: [{ delivery: "smoke", state: "succeeded", links: { self: "/v1/deliveries/smoke" } }] })
      expect((await keysUnder(client, bucket, "success/acme/smoke/")).filter((k) => k.endsWith("_manifest.json"))).toHaveLength(1)
      expect(await server.stop()).toBe(0)
    })
  })
}
