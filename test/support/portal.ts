import { expect } from "bun:test"
import { mkdirSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Browser, type BrowserContext, chromium, type Page } from "playwright-core"
import { apiServer } from "./api.ts"
import { onStop } from "./services.ts"

const ARTIFACTS = fileURLToPath(new URL("../artifacts/portal/", import.meta.url))
const AXE = fileURLToPath(new URL("../../node_modules/axe-core/axe.min.js", import.meta.url))

/**
 * The HTTP app (`apiServer`: partners `acme` and `globex` with a portal address each) and Debian's
 * headless Chromium driven by playwright-core, with the helpers the portal's browser tests share.
 * Screenshots go to test/artifacts/portal/ (not committed).
 */
export const portalBrowser = async () => {
  mkdirSync(ARTIFACTS, { recursive: true })
  const [api, browser] = await Promise.all([
    apiServer({ ratePerMinute: 10_000 }),
    chromium.launch({ executablePath: "/usr/bin/chromium", args: ["--no-sandbox"], timeout: 20_000 })
  ])
  onStop(() => browser.close())
  const axeSource = readFileSync(AXE, "utf8")

  const outboxLinks = () =>
    readdirSync(api.outbox)
      .filter((name) => name.endsWith(".html"))
      .flatMap((name) => [.../(http:\/\/[^"<]+\/portal\/link\/[A-Za-z0-9_-]+)/.exec(readFileSync(join(api.outbox, name), "utf8"))?.slice(1) ?? []])

  /** The pages `check` has seen, by name. */
  const audited = new Set<string>()

  /**
   * Every page a test meets: no serious or critical axe-core violation, no horizontal scrolling
   * at 375 or 1280 px, and a screenshot at each width.
   */
  const check = async (page: Page, name: string) => {
    // Evaluated by the driver, which the pages' Content-Security-Policy does not stop (tests run with it on).
    await page.evaluate(axeSource)
    const violations = await page.evaluate(async () => {
      const axe = (globalThis as unknown as { axe: { run: () => Promise<{ violations: Array<{ id: string; impact: string | null; nodes: Array<{ target: unknown }> }> }> } }).axe
      return (await axe.run()).violations.map(({ id, impact, nodes }) => ({ id, impact, targets: nodes.map((node) => JSON.stringify(node.target)) }))
    })
    expect({ name, violations: violations.filter((v) => v.impact === "serious" || v.impact === "critical") }).toEqual({ name, violations: [] })
    for (const width of [375, 1280]) {
      await page.setViewportSize({ width, height: 800 })
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth)
      expect({ name, width, overflow }).toEqual({ name, width, overflow: 0 })
      await page.screenshot({ path: join(ARTIFACTS, `${name}-${width}.png`), fullPage: true })
    }
    await page.setViewportSize({ width: 1280, height: 800 })
    audited.add(name)
  }

  /** Asks for a sign-in link for `email` on the sign-in page; answers the page and the link found in the outbox. */
  const requestLink = async (context: BrowserContext, email: string) => {
    const page = await context.newPage()
    await page.goto(`${api.base}/portal/sign-in`)
    const before = new Set(outboxLinks())
    await page.getByLabel(/Email|Adresse/).fill(email)
    await page.getByRole("button").filter({ hasText: /link|lien/ }).click()
    await page.waitForLoadState()
    const fresh = outboxLinks().filter((found) => !before.has(found))
    expect(fresh).toHaveLength(1)
    return { page, link: fresh[0]! }
  }

  /** Signs in as `email` (in English) and answers the page, on the deliveries list. */
  const signIn = async (context: BrowserContext, email: string) => {
    const { page, link } = await requestLink(context, email)
    await page.goto(link)
    await page.getByRole("button", { name: "Sign in" }).click()
    await page.waitForURL(`${api.base}/portal/deliveries`)
    return page
  }

  return { api, browser: browser as Browser, check, audited, requestLink, signIn, artifacts: ARTIFACTS }
}
