import { afterAll, describe, expect, test } from "bun:test"
import { execFileSync } from "node:child_process"
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Rejection, ReportBuilder } from "../../src/pipeline/Report.ts"
import { escapeHtml, renderReportEmail } from "../../src/pipeline/reportEmail.ts"

const ARTIFACTS = fileURLToPath(new URL("../artifacts/", import.meta.url))
const work = mkdtempSync(join(tmpdir(), "loaders-render-"))
afterAll(() => rmSync(work, { recursive: true, force: true }))

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((path) => {
  try {
    execFileSync(path, ["--version"], { stdio: "pipe" })
    return true
  } catch {
    return false
  }
})

const chromium = (args: ReadonlyArray<string>) => {
  if (!CHROMIUM) throw new Error("Chromium is not installed: apt-get install chromium")
  return execFileSync(CHROMIUM, [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", `--user-data-dir=${join(work, "profile")}`, "--virtual-time-budget=5000", ...args
  ], { stdio: ["ignore", "pipe", "pipe"], timeout: 60_000 }).toString()
}

/** A failed delivery with long, hostile and accented partner values: the worst case for layout. */
const report = () => {
  const builder = new ReportBuilder()
  const file = "transactions-relevé-bancaire-novembre-2026-compte-joint-agence-côte-d'azur.ndjson"
  builder.file(file, "transactions").read = 125_000
  const rules: Array<[string, string]> = [["iban.checksum", "$.account_iban"], ["amount.format", "$.amount"], ["text.too_long", "$.label"]]
  for (let i = 0; i < 12; i++) {
    const [rule, path] = rules[i % 3]!
    const rejection: Rejection = {
      file, index: 1000 + i, line: 1001 + i, offset: 250_000 + i * 200, path, rule,
      message: { en: "Must be an amount with at most 2 decimals.", fr: "Doit être un montant d'au plus 2 décimales : un nombre (1234.56) ou un texte (« 1 234,56 »)." },
      value: JSON.stringify(`<script>alert("${"x".repeat(120)}")</script>`)
    }
    builder.reject(rejection, true)
  }
  return builder.build({
    partner: "agence-immobilière-de-la-côte-d'azur-et-des-alpes-maritimes",
    delivery: "2026-11-relevés-bancaires-comptes-séquestres",
    runId: "4242",
    status: "failed",
    reason: { en: "12 of 125000 records were rejected.", fr: "12 enregistrements sur 125000 ont été rejetés, ce que la règle d'erreur « strict » n'autorise pas : rien de cette livraison n'a été chargé." },
    policy: { mode: "strict" },
    dryRun: false,
    startedAt: new Date("2026-11-25T10:00:00Z"),
    finishedAt: new Date("2026-11-25T10:01:05Z"),
    committed: false,
    archive: "failure/x/y/"
  })
}

/**
 * Renders the email inside an iframe as wide as the device (Chromium's headless window cannot be
 * narrower than 500 px) and reads back how wide its content is.
 */
const measure = (html: string, width: number, name: string) => {
  const page = join(work, `${name}.html`)
  writeFileSync(page, `<!doctype html><html><body style="margin:0;background:#ddd">
<iframe id="mail" style="border:0;width:${width}px;height:2400px;background:#fff" srcdoc="${escapeHtml(html)}"></iframe>
<script>
  const frame = document.getElementById("mail")
  frame.addEventListener("load", () => {
    const root = frame.contentDocument.documentElement
    document.body.setAttribute("data-measure", JSON.stringify({ content: root.scrollWidth, frame: frame.clientWidth }))
  })
</script></body></html>`)
  const dom = chromium([`--window-size=${Math.max(width, 500)},2400`, "--dump-dom", `file://${page}`])
  const found = /data-measure="([^"]+)"/.exec(dom)?.[1]
  if (!found) throw new Error(`the page did not report its size:\n${dom.slice(0, 500)}`)
  mkdirSync(ARTIFACTS, { recursive: true })
  chromium([`--window-size=${Math.max(width, 500)},2400`, `--screenshot=${join(ARTIFACTS, `${name}.png`)}`, `file://${page}`])
  return JSON.parse(found.replaceAll("&quot;", "\"")) as { content: number; frame: number }
}

describe("report email in headless Chromium (Debian's chromium, installed by .ci/run)", () => {
  for (const [device, width] of [["phone", 375], ["desktop", 1024]] as const) {
    for (const language of ["fr", "en"] as const) {
      test(`renders on a ${device} (${width} px, ${language}) without horizontal scrolling`, () => {
        const { html } = renderReportEmail(report(), language)
        const size = measure(html, width, `report-email-${device}-${language}`)
        expect(size.frame).toBe(width)
        expect(size.content).toBeLessThanOrEqual(width)
      }, 60_000)
    }
  }
})
