import { describe, expect, test } from "bun:test"
import { ReportBuilder, type Rejection } from "../../src/pipeline/Report.ts"
import { errorsCsv, escapeHtml, renderReportEmail } from "../../src/pipeline/reportEmail.ts"

const hostile = `<script>alert("pwned")</script> O'Brien & «Zoë»`

const rejection: Rejection = {
  file: `<img src=x onerror=alert(1)>.json`,
  index: 7,
  line: 9,
  offset: 321,
  path: "$.label",
  rule: "text.too_long",
  message: { en: "Must be at most 200 characters long.", fr: "Ne doit pas dépasser 200 caractères." },
  value: JSON.stringify(hostile)
}

const failedReport = () => {
  const builder = new ReportBuilder()
  const tally = builder.file(rejection.file, "properties")
  tally.read = 10
  builder.reject(rejection, true)
  return builder.build({
    partner: hostile,
    delivery: "relevé \"novembre\"",
    runId: "42",
    status: "failed",
    reason: { en: "1 of 10 records were rejected.", fr: "1 enregistrement sur 10 a été rejeté." },
    policy: { mode: "strict" },
    dryRun: false,
    startedAt: new Date("2026-11-25T10:00:00Z"),
    finishedAt: new Date("2026-11-25T10:00:02Z"),
    committed: false,
    archive: "failure/x/y/"
  })
}

describe("report email", () => {
  test("partner data is escaped everywhere in the HTML, and correct in the text", () => {
    const { subject, html, text } = renderReportEmail(failedReport(), "fr")
    expect(html).not.toContain("<script>")
    expect(html).not.toContain("<img src=x")
    expect(html).toContain(escapeHtml(hostile))
    expect(html).toContain("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; O&#39;Brien &amp; «Zoë»")
    expect(html).toContain("relevé &quot;novembre&quot;")
    expect(html).not.toMatch(/https?:\/\//)
    expect(subject).toBe(`[loaders] ${hostile} / relevé "novembre" : Livraison refusée`)
    expect(text).toContain(hostile)
    expect(text).toContain("Ne doit pas dépasser 200 caractères.")
    expect(text).toContain("enregistrement 7, ligne 9, $.label")
  })

  test("French by default wording, English on request", () => {
    const report = failedReport()
    expect(renderReportEmail(report, "fr").html).toContain("Erreurs par règle")
    const en = renderReportEmail(report, "en")
    expect(en.subject).toEndWith(": Delivery rejected")
    expect(en.html).toContain("Errors by rule")
    expect(en.html).toContain('lang="en"')
  })

  test("a colon takes a space before it in French only", () => {
    const report = failedReport()
    const en = renderReportEmail(report, "en").html
    expect(en).toContain(`Partner: <strong>${escapeHtml(hostile)}</strong> · Delivery: <strong>`)
    expect(en).toContain("Error policy: strict · Duration: ")
    expect(en).toContain("(value: <code")
    expect(en).not.toMatch(/\w :/)
    const fr = renderReportEmail(report, "fr").html
    expect(fr).toContain("Partenaire : <strong>")
    expect(fr).toContain("Règle d'erreur : strict · Durée : ")
    expect(fr).toContain("(valeur : <code")
  })

  test("the CSV opens in a spreadsheet: BOM, separator per language, quoting, accents", () => {
    const fr = errorsCsv([rejection], "fr")
    expect(fr.startsWith("\uFEFF")).toBe(true)
    const [header, row] = fr.slice(1).split("\r\n")
    expect(header).toBe("fichier;enregistrement;ligne;octet;chemin;règle;message;valeur")
    expect(row).toBe(`<img src=x onerror=alert(1)>.json;7;9;321;$.label;text.too_long;Ne doit pas dépasser 200 caractères.;"""<script>alert(\\""pwned\\"")</script> O'Brien & «Zoë»"""`)
    expect(errorsCsv([rejection], "en").split("\r\n")[0]).toBe("\uFEFFfile,record,line,byte,path,rule,message,value")
  })
})
