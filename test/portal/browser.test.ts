// The partner portal in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// sign in through the link found in the outbox, watch a delivery turn failed live, open its report,
// filter by rule, download the CSV and compare it with the archived `_errors.ndjson`; the refusals
// as a browser meets them; axe-core on every page; screenshots at 375 and 1280 px, without
// horizontal scrolling, kept in test/artifacts/portal/. The upload through a network cut: upload.test.ts.
import { beforeAll, expect, test } from "bun:test"
import { createHash } from "node:crypto"
import { readFileSync } from "node:fs"
import { Database } from "../../src/effects/Database.ts"
import { jsonArray, property } from "../support/fixtures.ts"
import { readObject } from "../support/pipeline.ts"
import { portalBrowser } from "../support/portal.ts"

let portal: Awaited<ReturnType<typeof portalBrowser>>

beforeAll(async () => {
  portal = await portalBrowser()
})

/** A delivery through `/v1` as `partner`: three properties of which two are refused (negative surface). */
const deliver = async (partner: "acme" | "globex", delivery: string) => {
  const { api } = portal
  const auth = api.auth(api.keys[partner])
  const body = jsonArray([property(1), { ...property(2), surface_m2: -1 }, { ...property(3), surface_m2: -2 }])
  expect((await fetch(`${api.base}/v1/deliveries/${delivery}/files/properties.json`, { method: "PUT", headers: auth, body })).status).toBe(201)
  expect((await fetch(`${api.base}/v1/deliveries/${delivery}/complete`, { method: "POST", headers: auth })).status).toBe(202)
}

test("a partner signs in from the outbox, watches a delivery fail live, reads and downloads its report", async () => {
  const { api, browser, check, requestLink } = portal
  await deliver("globex", "globex-1")
  const context = await browser.newContext({ acceptDownloads: true, locale: "en-GB" })
  context.setDefaultTimeout(10_000)
  const { page, link } = await requestLink(context, "ops@acme.test")
  await check(page, "link-sent")
  await page.goto(`${api.base}/portal/sign-in`)
  await check(page, "sign-in")

  await page.goto(link)
  await check(page, "use-link")
  await page.getByRole("button", { name: "Sign in" }).click()
  await page.waitForURL(`${api.base}/portal/deliveries`)
  expect(await page.getByText("No delivery yet.").count()).toBe(1)
  const session = (await context.cookies()).find((cookie) => cookie.name === "loaders_portal")!
  expect({ httpOnly: session.httpOnly, sameSite: session.sameSite }).toEqual({ httpOnly: true, sameSite: "Lax" })

  // A delivery arrives while the page is open: it appears, then turns failed, without a click.
  await page.goto(`${api.base}/portal/deliveries`)
  await deliver("acme", "acme-1")
  await page.locator('[data-delivery="acme-1"][data-state="failed"]').waitFor({ timeout: 30_000 })
  await check(page, "deliveries")

  await page.getByRole("link", { name: "acme-1" }).click()
  await page.waitForURL(`${api.base}/portal/deliveries/acme-1`)
  await check(page, "report")
  const rules = await page.locator("section[data-rule]").evaluateAll((sections) => sections.map((section) => section.getAttribute("data-rule")))
  expect(rules.length).toBeGreaterThan(0)
  await page.getByLabel("Rule").selectOption(rules[0]!)
  await page.getByRole("button", { name: "Filter" }).click()
  await page.waitForURL(/rule=/)
  expect(await page.locator("section[data-rule]").evaluateAll((sections) => sections.map((section) => section.getAttribute("data-rule")))).toEqual([rules[0]!])

  const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("link", { name: /\(CSV\)/ }).click()])
  const csv = readFileSync((await download.path())!, "utf8")
  const status = (await (await fetch(`${api.base}/v1/deliveries/acme-1`, { headers: api.auth(api.keys.acme) })).json()) as { report: { status: string }; runId: string }
  const [run] = await api.runtime.runPromise(Database.use((db) => db.query<{ archive: string }>("SELECT report->>'archive' AS archive FROM loaders.delivery_runs WHERE id = $1::bigint", [status.runId])))
  const archived = (await readObject(api.client, api.bucket, `${run!.archive}_errors.ndjson`)).trim().split("\n").map((line) => JSON.parse(line) as { file: string; rule: string; path: string })
  const rows = csv.trim().split("\n").slice(1)
  expect(rows).toHaveLength(archived.length)
  archived.forEach((rejection, i) => {
    for (const part of [rejection.file, rejection.rule, rejection.path]) expect(rows[i]).toContain(part)
  })

  await page.goto(`${api.base}/portal/datasets`)
  await check(page, "datasets")

  // Another partner's delivery by direct URL: 404.
  const other = await page.goto(`${api.base}/portal/deliveries/globex-1`)
  expect(other?.status()).toBe(404)
  await check(page, "not-found")

  // A form posted without its token: 403, and still signed in.
  const refused = await page.evaluate(async () => (await fetch("/portal/sign-out", { method: "POST", body: new URLSearchParams({}) })).status)
  expect(refused).toBe(403)
  expect((await page.goto(`${api.base}/portal/deliveries`))?.url()).toBe(`${api.base}/portal/deliveries`)

  // Sign-out: back to the sign-in page, and the partner's pages are closed.
  await page.getByRole("button", { name: "Sign out" }).click()
  await page.waitForURL(`${api.base}/portal/sign-in`)
  await page.goto(`${api.base}/portal/deliveries/acme-1`)
  expect(page.url()).toBe(`${api.base}/portal/sign-in`)
  await context.close()
}, 60_000)

test("an expired link: a clear page, and no session", async () => {
  const { api, browser, check, audited, requestLink } = portal
  const context = await browser.newContext({ locale: "fr-FR" })
  context.setDefaultTimeout(10_000)
  const { page, link } = await requestLink(context, "data@globex.test")
  const token = link.slice(link.lastIndexOf("/") + 1)
  await api.runtime.runPromise(Database.use((db) =>
    db.execute("UPDATE loaders.portal_links SET expires_at = now() - interval '1 minute' WHERE hash = $1", [createHash("sha256").update(token).digest("hex")])
  ))
  const answer = await page.goto(link)
  expect(answer?.status()).toBe(410)
  expect(await page.getByRole("heading", { level: 1 }).textContent()).toBe("Ce lien a expiré")
  await check(page, "link-expired")
  expect((await context.cookies()).some((cookie) => cookie.name === "loaders_portal")).toBe(false)
  await context.close()
  expect([...audited].sort()).toEqual(["datasets", "deliveries", "link-expired", "link-sent", "not-found", "report", "sign-in", "use-link"])
}, 30_000)
