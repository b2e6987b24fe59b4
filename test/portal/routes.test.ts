// The partner portal over HTTP on a real Bun server, real PostgreSQL and s3rver: sign-in by the link
// found in the outbox, the partner's deliveries and a failed one's report, its CSV against the
// archived `_errors.ndjson`, and the refusals (no form token, another partner's delivery, a link
// expired or used, after sign-out).
import { beforeAll, describe, expect, test } from "bun:test"
import { createHash } from "node:crypto"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { Database } from "../../src/effects/Database.ts"
import { Effect } from "effect"
import { PortalAuth } from "../../src/portal/PortalAuth.ts"
import { apiServer, portalSettings } from "../support/api.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { readObject } from "../support/pipeline.ts"

let api: Awaited<ReturnType<typeof apiServer>>

/** A browser's cookies for the portal, kept from answer to answer. */
const browser = () => {
  const cookies = new Map<string, string>()
  const go = async (path: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers)
    if (cookies.size) headers.set("cookie", [...cookies].map(([name, value]) => `${name}=${value}`).join("; "))
    const response = await fetch(`${api.base}${path}`, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(20_000) })
    const setCookies = response.headers.getSetCookie()
    for (const line of setCookies) {
      const [pair] = line.split(";")
      const at = pair!.indexOf("=")
      const [name, value] = [pair!.slice(0, at), pair!.slice(at + 1)]
      if (value === "" || /max-age=0/i.test(line)) cookies.delete(name)
      else cookies.set(name, value)
    }
    return { status: response.status, location: response.headers.get("location"), setCookies, headers: response.headers, text: await response.text() }
  }
  /** The form token of the page at `path` (every form carries it). */
  const csrf = async (path = "/portal/sign-in") => /name="csrf" value="([^"]+)"/.exec((await go(path)).text)?.[1] ?? ""
  const post = (path: string, fields: Record<string, string>) =>
    go(path, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: new URLSearchParams(fields).toString() })
  return { go, csrf, post, cookies }
}

const outboxLinks = () =>
  readdirSync(api.outbox)
    .filter((name) => name.endsWith(".html"))
    .flatMap((name) => [.../\/portal\/link\/([A-Za-z0-9_-]+)/.exec(readFileSync(join(api.outbox, name), "utf8"))?.slice(1) ?? []])

/** Asks for a link for `email` and answers the one that arrived in the outbox. */
const mailedLink = async (email: string) => {
  const visitor = browser()
  const before = new Set(outboxLinks())
  const answer = await visitor.post("/portal/sign-in", { csrf: await visitor.csrf(), email })
  expect(answer.status).toBe(200)
  const fresh = outboxLinks().filter((token) => !before.has(token))
  expect(fresh).toHaveLength(1)
  return fresh[0]!
}

const signedIn = async (email: string) => {
  const user = browser()
  const token = await mailedLink(email)
  const page = await user.go(`/portal/link/${token}`)
  expect(page.status).toBe(200)
  const opened = await user.post(`/portal/link/${token}`, { csrf: /name="csrf" value="([^"]+)"/.exec(page.text)![1]! })
  expect({ status: opened.status, location: opened.location }).toEqual({ status: 303, location: "/portal/deliveries" })
  return { ...user, token, opened }
}

const sql = <T>(text: string, params: ReadonlyArray<string> = []) => api.runtime.runPromise(Database.use((db) => db.query<T>(text, params)))

/** A delivery through `/v1` as `partner`, finished: two properties of which one is refused (negative surface). */
const delivered = async (partner: "acme" | "globex", delivery: string) => {
  const auth = api.auth(api.keys[partner])
  const body = jsonArray([property(1), { ...property(2), surface_m2: -1 }, { ...property(3), surface_m2: -2 }])
  expect((await fetch(`${api.base}/v1/deliveries/${delivery}/files/properties.json`, { method: "PUT", headers: auth, body })).status).toBe(201)
  expect((await fetch(`${api.base}/v1/deliveries/${delivery}/complete`, { method: "POST", headers: auth })).status).toBe(202)
  return api.finished(delivery, api.keys[partner])
}

beforeAll(async () => {
  api = await apiServer({ ratePerMinute: 10_000 })
  await Promise.all([delivered("acme", "acme-2026-12"), delivered("globex", "globex-2026-12")])
})

describe("sign-in by a one-time link", () => {
  test("the link mailed to a registered address opens a session in an HttpOnly, SameSite=Lax cookie, once", async () => {
    const user = await signedIn("OPS@acme.test")
    const session = user.opened.setCookies.find((line) => line.startsWith("loaders_portal="))!
    expect(session).toMatch(/HttpOnly/)
    expect(session).toMatch(/SameSite=Lax/)
    expect(session).toMatch(/Path=\/portal/)
    expect(session).not.toMatch(/Secure/) // plain http here; Secure is set behind https
    const list = await user.go("/portal/deliveries")
    expect(list.status).toBe(200)
    expect(list.text).toContain("acme-2026-12")
    expect(list.text).not.toContain("globex-2026-12")
    // Only this answer's own inline style and scripts may run (the browser tests run with it on).
    const policy = list.headers.get("content-security-policy") ?? ""
    const nonce = /script-src 'nonce-([^']+)'/.exec(policy)?.[1]
    expect(nonce).toBeDefined()
    expect(policy).not.toContain("unsafe-inline")
    expect(list.text).toContain(`<script nonce="${nonce}">`)
    // Partner acme reads English (its language in the partners file).
    expect(list.text).toContain("<html lang=\"en\"")
    // Stored by hash only: neither the link nor the session token is in the database as such.
    const sessionToken = user.cookies.get("loaders_portal")!
    const hashes = await sql<{ hash: string }>("SELECT hash FROM loaders.portal_sessions UNION ALL SELECT hash FROM loaders.portal_links")
    const digest = (token: string) => createHash("sha256").update(token).digest("hex")
    expect(hashes.map((row) => row.hash)).toEqual(expect.arrayContaining([digest(sessionToken), digest(user.token)]))
    expect(hashes.some((row) => row.hash === sessionToken || row.hash === user.token)).toBe(false)

    // Used once: the second time, a clear page and no session.
    const again = browser()
    const page = await again.go(`/portal/link/${user.token}`)
    expect(page.status).toBe(410)
    expect(page.text).toContain("Ce lien a déjà servi")
    expect(page.text).toContain("Aucune session n&#39;a été ouverte")
    const reuse = await again.post(`/portal/link/${user.token}`, { csrf: await again.csrf() })
    expect(reuse.status).toBe(410)
    expect(again.cookies.has("loaders_portal")).toBe(false)
  })

  test("an unknown address gets the same answer and no mail", async () => {
    const visitor = browser()
    const before = readdirSync(api.outbox).length
    const answer = await visitor.post("/portal/sign-in", { csrf: await visitor.csrf(), email: "nobody@acme.test" })
    expect(answer.status).toBe(200)
    expect(answer.text).toContain("Si cette adresse est enregistrée")
    expect(readdirSync(api.outbox).length).toBe(before)
  })

  test("an expired link: a clear page, and no session", async () => {
    const token = await mailedLink("data@globex.test")
    await sql("UPDATE loaders.portal_links SET expires_at = now() - interval '1 minute' WHERE hash = $1", [createHash("sha256").update(token).digest("hex")])
    const visitor = browser()
    const page = await visitor.go(`/portal/link/${token}`)
    expect(page.status).toBe(410)
    expect(page.text).toContain("Ce lien a expiré")
    const post = await visitor.post(`/portal/link/${token}`, { csrf: await visitor.csrf() })
    expect(post.status).toBe(410)
    expect(visitor.cookies.has("loaders_portal")).toBe(false)
    expect((await visitor.go("/portal/deliveries")).location).toBe("/portal/sign-in")
  })

  test("an address gets at most linksPerHour sign-in links an hour", async () => {
    const limited = (email: string) =>
      api.runtime.runPromise(
        PortalAuth.use((auth) => auth.issueLink({ partner: "acme", email })).pipe(Effect.provide(PortalAuth.layerWith({ ...portalSettings, linksPerHour: 2 })))
      )
    const tokens = [await limited("flood@acme.test"), await limited("flood@acme.test"), await limited("flood@acme.test")]
    expect(tokens.map((token) => typeof token)).toEqual(["string", "string", "undefined"])
    expect(typeof (await limited("other@acme.test"))).toBe("string")
  })

  test("a form body over 16 KiB is refused before it is read", async () => {
    const visitor = browser()
    const answer = await visitor.post("/portal/sign-in", { csrf: await visitor.csrf(), email: "ops@acme.test", padding: "x".repeat(20_000) })
    expect(answer.status).toBe(413)
  })

  test("an unknown link: a clear page", async () => {
    const page = await browser().go("/portal/link/not-a-link")
    expect(page.status).toBe(404)
    expect(page.text).toContain("Ce lien n&#39;est pas valide")
  })

  test("a form without its token, or with another visitor's, is refused with 403 and changes nothing", async () => {
    const user = await signedIn("ops@acme.test")
    const stranger = browser()
    const strangersToken = await stranger.csrf()
    for (const fields of [{}, { csrf: "" }, { csrf: strangersToken }] as Array<Record<string, string>>) {
      expect((await user.post("/portal/sign-out", fields)).status).toBe(403)
      expect((await user.post("/portal/sign-in", { ...fields, email: "ops@acme.test" })).status).toBe(403)
    }
    const token = await mailedLink("ops@acme.test")
    expect((await stranger.post(`/portal/link/${token}`, {})).status).toBe(403)
    expect(stranger.cookies.has("loaders_portal")).toBe(false)
    // Still signed in, and the link still unused.
    expect((await user.go("/portal/deliveries")).status).toBe(200)
    expect((await stranger.go(`/portal/link/${token}`)).status).toBe(200)
  })

  test("signed in, a form token planted as a cookie (as a sibling domain can) is refused; the session's own is taken", async () => {
    const user = await signedIn("ops@acme.test")
    const own = await user.csrf("/portal/deliveries")
    // The double-submit pair an attacker can make: the cookie set to a value, the form carrying it.
    user.cookies.set("loaders_portal_csrf", "planted-by-a-sibling-domain")
    expect((await user.post("/portal/sign-out", { csrf: "planted-by-a-sibling-domain" })).status).toBe(403)
    expect((await user.go("/portal/deliveries")).status).toBe(200)
    // Each session has its own token, which the next one does not take.
    const other = await signedIn("ops@acme.test")
    expect(await other.csrf("/portal/deliveries")).not.toBe(own)
    expect((await other.post("/portal/sign-out", { csrf: own })).status).toBe(403)
    const out = await user.post("/portal/sign-out", { csrf: own })
    expect({ status: out.status, location: out.location }).toEqual({ status: 303, location: "/portal/sign-in" })
  })

  test("sign-out ends the session on the server, not only in the browser", async () => {
    const user = await signedIn("ops@acme.test")
    const sessionCookie = user.cookies.get("loaders_portal")!
    const out = await user.post("/portal/sign-out", { csrf: await user.csrf("/portal/deliveries") })
    expect({ status: out.status, location: out.location }).toEqual({ status: 303, location: "/portal/sign-in" })
    expect(user.cookies.has("loaders_portal")).toBe(false)
    // The old cookie, replayed, reaches nothing.
    const replay = await fetch(`${api.base}/portal/deliveries`, { headers: { cookie: `loaders_portal=${sessionCookie}` }, redirect: "manual" })
    expect({ status: replay.status, location: replay.headers.get("location") }).toEqual({ status: 303, location: "/portal/sign-in" })
  })
})

describe("deliveries and reports, the signed-in partner's only", () => {
  test("a failed delivery's report: errors by rule, filters, the CSV equal to the archived _errors.ndjson", async () => {
    const user = await signedIn("ops@acme.test")
    const list = await user.go("/portal/deliveries")
    expect(list.text).toMatch(/data-delivery="acme-2026-12" data-state="failed"/)
    const report = await user.go("/portal/deliveries/acme-2026-12")
    expect(report.status).toBe(200)
    const rules = [...report.text.matchAll(/<section[^>]*data-rule="([^"]+)"/g)].map((match) => match[1]!)
    expect(rules.length).toBeGreaterThan(0)
    // Filtered by rule: that rule's group alone; by a file with no error: none.
    const one = await user.go(`/portal/deliveries/acme-2026-12?rule=${encodeURIComponent(rules[0]!)}`)
    expect([...one.text.matchAll(/<section[^>]*data-rule="([^"]+)"/g)].map((match) => match[1])).toEqual([rules[0]])
    const none = await user.go("/portal/deliveries/acme-2026-12?file=leases.json")
    expect(none.text).not.toContain("<section")
    expect(none.text).toContain("No error matches this filter.")

    const csv = await user.go("/portal/deliveries/acme-2026-12/errors.csv?language=en")
    expect(csv.status).toBe(200)
    expect(csv.headers.get("content-type")).toContain("text/csv")
    const status = (await (await fetch(`${api.base}/v1/deliveries/acme-2026-12`, { headers: api.auth(api.keys.acme) })).json()) as { runId: string }
    const [run] = await sql<{ archive: string }>("SELECT report->>'archive' AS archive FROM loaders.delivery_runs WHERE id = $1::bigint", [status.runId])
    const archived = (await readObject(api.client, api.bucket, `${run!.archive}_errors.ndjson`)).trim().split("\n").map((line) => JSON.parse(line) as { file: string; line: number; rule: string })
    const rows = csv.text.trim().split("\n").slice(1)
    expect(rows).toHaveLength(archived.length)
    archived.forEach((rejection, i) => {
      expect(rows[i]).toContain(rejection.file)
      expect(rows[i]).toContain(rejection.rule)
    })
    // The same bytes as /v1 serves to the partner's key.
    const v1 = await (await fetch(`${api.base}/v1/deliveries/acme-2026-12/errors.csv?language=en`, { headers: api.auth(api.keys.acme) })).text()
    expect(csv.text).toBe(v1)
    const json = await user.go("/portal/deliveries/acme-2026-12/report.json")
    expect((JSON.parse(json.text) as { state: string }).state).toBe("failed")
  })

  test("another partner's delivery by direct URL is a 404, its CSV and report too", async () => {
    const user = await signedIn("ops@acme.test")
    for (const path of ["", "/errors.csv", "/report.json"]) {
      const answer = await user.go(`/portal/deliveries/globex-2026-12${path}`)
      expect({ path, status: answer.status }).toEqual({ path, status: 404 })
      expect(answer.text).not.toContain("properties.json")
    }
    expect((await user.go("/portal/deliveries/..%2Fglobex%2Fglobex-2026-12")).status).toBe(404)
  })

  test("the deliveries' states stream as server-sent events", async () => {
    const user = await signedIn("ops@acme.test")
    const abort = new AbortController()
    const timer = setTimeout(() => abort.abort(), 10_000)
    const response = await fetch(`${api.base}/portal/deliveries/events`, {
      headers: { cookie: `loaders_portal=${user.cookies.get("loaders_portal")}` },
      signal: abort.signal
    })
    expect(response.headers.get("content-type")).toContain("text/event-stream")
    const reader = response.body!.getReader()
    let text = ""
    while (!text.includes("\n\n")) text += new TextDecoder().decode((await reader.read()).value)
    abort.abort()
    clearTimeout(timer)
    const event = text.slice(0, text.indexOf("\n\n")).split("\n")
    // Reconnect after a second when the stream ends (each lasts a minute, to check the session again).
    expect(event).toContain("retry: 1000")
    const data = JSON.parse(event.find((line) => line.startsWith("data: "))!.slice(6)) as Array<{ delivery: string; state: string }>
    expect(data).toEqual([{ delivery: "acme-2026-12", state: "failed" }])
    // Without a session: no stream.
    expect((await browser().go("/portal/deliveries/events")).status).toBe(303)
  })

  test("the language switch keeps the page and the choice", async () => {
    const user = await signedIn("ops@acme.test")
    const switched = await user.go(`/portal/language/fr?back=${encodeURIComponent("/portal/deliveries")}`)
    expect(switched.location).toBe("/portal/deliveries")
    expect((await user.go("/portal/deliveries")).text).toContain("Livraisons")
    // Never a redirect out of the portal.
    expect((await user.go("/portal/language/en?back=https://evil.test/")).location).toBe("/portal/")
    expect((await user.go("/portal/language/en?back=//evil.test/portal/")).location).toBe("/portal/")
  })
})
