// A 50 MB delivery uploaded in headless Chromium through the portal's upload page: a progress bar
// per file, the network cut mid-upload and given back (the tus client resumes from the server's
// offset), "complete", and the state turning succeeded live on the deliveries page.
import { beforeAll, expect, test } from "bun:test"
import { mkdirSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { jsonArray, property } from "../support/fixtures.ts"
import { portalBrowser } from "../support/portal.ts"

let portal: Awaited<ReturnType<typeof portalBrowser>>

beforeAll(async () => {
  portal = await portalBrowser()
})

/** The tus client's chunk (UPLOAD_SCRIPT in src/portal/pages.tsx): the cut comes once one is in. */
const CHUNK = 8 * 1024 * 1024

test("a 50 MB delivery uploaded with progress, through a network cut, completed and seen succeeding live", async () => {
  const { api, browser, check, signIn, artifacts } = portal
  const records = Array.from({ length: 195_000 }, (_, i) => property(i))
  const file = join(artifacts, "upload", "properties.json")
  mkdirSync(join(file, ".."), { recursive: true })
  writeFileSync(file, jsonArray(records))
  const bytes = statSync(file).size
  expect(bytes).toBeGreaterThan(50_000_000)

  const context = await browser.newContext({ locale: "en-GB" })
  context.setDefaultTimeout(20_000)
  const page = await signIn(context, "ops@acme.test")
  await page.getByRole("link", { name: "Upload a delivery" }).click()
  await page.getByLabel("Delivery name").fill("big-upload")
  await page.getByLabel("Files", { exact: true }).setInputFiles(file)
  await check(page, "upload")
  await page.getByRole("button", { name: "Send the files" }).click()

  // Cut the network once the first chunk is in, then give it back: the upload resumes from the server's offset.
  const bar = page.locator('progress[data-file="properties.json"]')
  await page.waitForFunction((chunk) => (document.querySelector("progress") as HTMLProgressElement).value > chunk, CHUNK)
  await context.setOffline(true)
  await page.getByText("The connection dropped").waitFor()
  await context.setOffline(false)
  await page.getByText("Every file is in.").waitFor({ timeout: 40_000 })
  expect(await bar.evaluate((element) => [(element as HTMLProgressElement).value, (element as HTMLProgressElement).max])).toEqual([bytes, bytes])

  await page.getByRole("button", { name: "Complete the delivery" }).click()
  await page.waitForURL(`${api.base}/portal/deliveries/big-upload`)
  await page.goto(`${api.base}/portal/deliveries`)
  await page.locator('[data-delivery="big-upload"][data-state="succeeded"]').waitFor({ timeout: 40_000 })
  const status = (await (await fetch(`${api.base}/v1/deliveries/big-upload`, { headers: api.auth(api.keys.acme) })).json()) as { report: { totals: { loaded: number } } }
  expect(status.report.totals.loaded).toBe(records.length)
  await context.close()
}, 60_000)
