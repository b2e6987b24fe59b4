import { describe, expect, test } from "bun:test"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { promtool } from "../support/prometheus.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))
const OTEL = join(ROOT, "otel")

interface Rule {
  readonly alert?: string
  readonly record?: string
  readonly expr: string
  readonly for?: string
  readonly labels?: Record<string, string>
  readonly annotations?: Record<string, string>
}
interface RuleTests {
  readonly tests: ReadonlyArray<{ readonly alert_rule_test?: ReadonlyArray<{ readonly alertname: string; readonly exp_alerts: ReadonlyArray<unknown> }> }>
}

const alerts = (Bun.YAML.parse(readFileSync(join(OTEL, "alerts.yaml"), "utf8")) as { groups: ReadonlyArray<{ rules: ReadonlyArray<Rule> }> })
  .groups.flatMap((group) => group.rules)
  .filter((rule) => rule.alert !== undefined)

/** GitHub's anchor of a Markdown heading: lower case, spaces to dashes, punctuation dropped. */
const anchor = (heading: string) => heading.trim().toLowerCase().replace(/[^a-z0-9 _-]/g, "").replaceAll(" ", "-")

describe("the alert rules", () => {
  test("promtool check rules: otel/alerts.yaml is valid", async () => {
    const { code, output } = await promtool(["check", "rules", "alerts.yaml"], OTEL)
    expect(output).toContain(`SUCCESS: ${alerts.length + 2} rules found`)
    expect(code).toBe(0)
  }, 60_000)

  test("promtool test rules: every unit test of otel/alerts.test.yaml passes", async () => {
    const { code, output } = await promtool(["test", "rules", "alerts.test.yaml"], OTEL)
    expect(output).toContain("SUCCESS")
    expect(code).toBe(0)
  }, 60_000)

  test("the unit tests see every alert fire at least once and stay silent at least once", () => {
    const cases = (Bun.YAML.parse(readFileSync(join(OTEL, "alerts.test.yaml"), "utf8")) as RuleTests).tests.flatMap((t) => t.alert_rule_test ?? [])
    for (const { alert } of alerts) {
      const mine = cases.filter((c) => c.alertname === alert)
      expect([alert, mine.some((c) => c.exp_alerts.length > 0), mine.some((c) => c.exp_alerts.length === 0)]).toEqual([alert, true, true])
    }
  })

  test("every alert has a severity, a summary and a description, and links to its entry in docs/runbook.md", () => {
    const runbook = readFileSync(join(ROOT, "docs/runbook.md"), "utf8")
    const anchors = new Set([...runbook.matchAll(/^#{2,3} (.+)$/gm)].map((match) => anchor(match[1]!)))
    for (const rule of alerts) {
      expect([rule.alert, rule.labels?.severity]).toEqual([rule.alert, expect.stringMatching(/^(critical|warning)$/)])
      expect([rule.alert, (rule.annotations?.summary ?? "").length > 20, (rule.annotations?.description ?? "").length > 20]).toEqual([rule.alert, true, true])
      const link = rule.annotations?.runbook_url ?? ""
      expect([rule.alert, link]).toEqual([rule.alert, `docs/runbook.md#${rule.alert!.toLowerCase()}`])
      expect([rule.alert, anchors.has(link.split("#")[1]!)]).toEqual([rule.alert, true])
    }
    // And the runbook has no entry for an alert that does not exist.
    const entries = [...runbook.matchAll(/^## (Loaders\w+)$/gm)].map((match) => match[1])
    expect(entries.sort()).toEqual(alerts.map((rule) => rule.alert).sort())
  })
})
