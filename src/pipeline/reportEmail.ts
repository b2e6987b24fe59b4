import type { Bilingual } from "../../schemas/Dataset.ts"
import type { DeliveryReport, Rejection, RuleGroup } from "./Report.ts"

export type Language = "fr" | "en"

/** A rendered report email, before it has recipients. */
export interface ReportEmail {
  readonly subject: string
  readonly html: string
  readonly text: string
}

const WORDS = {
  fr: {
    succeeded: "Livraison acceptée",
    failed: "Livraison refusée",
    duplicate: "Livraison déjà chargée",
    delivery: "Livraison",
    partner: "Partenaire",
    policy: "Règle d'erreur",
    duration: "Durée",
    file: "Fichier",
    dataset: "Jeu de données",
    read: "Lus",
    loaded: "Chargés",
    rejected: "Rejetés",
    total: "Total",
    errors: "Erreurs par règle",
    occurrences: "occurrence(s)",
    record: "enregistrement",
    line: "ligne",
    value: "valeur",
    attached: "La liste complète des erreurs est jointe (errors.csv) et archivée avec la livraison (_errors.ndjson).",
    fix: "Corrigez les enregistrements signalés et déposez à nouveau la livraison complète.",
    footer: "Message envoyé automatiquement par loaders. Ne répondez pas à ce message.",
    // French typography puts a space before a colon; English does not.
    colon: " :"
  },
  en: {
    succeeded: "Delivery accepted",
    failed: "Delivery rejected",
    duplicate: "Delivery already loaded",
    delivery: "Delivery",
    partner: "Partner",
    policy: "Error policy",
    duration: "Duration",
    file: "File",
    dataset: "Dataset",
    read: "Read",
    loaded: "Loaded",
    rejected: "Rejected",
    total: "Total",
    errors: "Errors by rule",
    occurrences: "occurrence(s)",
    record: "record",
    line: "line",
    value: "value",
    attached: "The full list of errors is attached (errors.csv) and archived with the delivery (_errors.ndjson).",
    fix: "Fix the records listed and deposit the whole delivery again.",
    footer: "Sent automatically by loaders. Please do not reply.",
    colon: ":"
  }
} as const

/** Escapes text for HTML content and attribute values: partner data is never markup. */
export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c] ?? c)

const MAX_VALUE = 60
const shorten = (text: string) => (text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text)

const COLORS = { succeeded: "#1a7f37", failed: "#b42318", duplicate: "#8a6d00" } as const

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`

const where = (r: Rejection, w: (typeof WORDS)[Language]) =>
  `${r.file}, ${w.record} ${r.index}, ${w.line} ${r.line}, ${r.path}`

const say = (message: Bilingual, language: Language) => message[language]

/**
 * The report email of a delivery in one language: subject with partner, delivery and status;
 * HTML with inline styles and tables only (mail clients ignore stylesheets; no external asset),
 * narrow enough for a phone, every partner value escaped; and the same in plain text.
 */
export const renderReportEmail = (report: DeliveryReport, language: Language): ReportEmail => {
  const w = WORDS[language]
  const title = w[report.status]
  const subject = `[loaders] ${report.partner} / ${report.delivery}${w.colon} ${title}`
  const reason = report.reason ? say(report.reason, language) : undefined
  const td = "padding:6px 8px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top;word-break:break-word;"
  const num = "padding:6px 8px;border-bottom:1px solid #e4e7eb;text-align:right;vertical-align:top;white-space:nowrap;"
  const th = "padding:6px 8px;border-bottom:2px solid #cbd2d9;text-align:left;font-weight:bold;"

  const fileRows = report.files
    .map((f) =>
      `<tr><td style="${td}">${escapeHtml(f.file)}${f.dataset ? `<br><span style="color:#616e7c;font-size:12px;">${escapeHtml(f.dataset)}</span>` : ""}` +
      `${f.problem ? `<br><span style="color:#b42318;font-size:12px;">${escapeHtml(say(f.problem.message, language))}</span>` : ""}</td>` +
      `<td style="${num}">${f.read}</td><td style="${num}">${f.loaded}</td><td style="${num}">${f.rejected}</td></tr>`
    )
    .join("")
  const t = report.totals
  const totalRow =
    `<tr><td style="${td}font-weight:bold;">${w.total}</td><td style="${num}font-weight:bold;">${t.read}</td>` +
    `<td style="${num}font-weight:bold;">${t.loaded}</td><td style="${num}font-weight:bold;">${t.rejected}</td></tr>`

  // An example repeats its message only when it says more than its group's.
  const example = (g: RuleGroup) => (r: Rejection) =>
    `<li style="margin:0 0 6px;word-break:break-word;"><span style="color:#616e7c;">${escapeHtml(where(r, w))}</span>` +
    `${say(r.message, language) === say(g.message, language) ? "" : `<br>${escapeHtml(say(r.message, language))}`}` +
    `${r.value === undefined ? "" : ` <span style="color:#616e7c;">(${w.value}${w.colon} <code style="font-family:monospace;background:#f4f5f7;">${escapeHtml(shorten(r.value))}</code>)</span>`}</li>`
  const group = (g: RuleGroup) =>
    `<tr><td style="${td}"><strong>${escapeHtml(say(g.message, language))}</strong>` +
    `<br><span style="color:#616e7c;font-size:12px;">${escapeHtml(g.rule)} · ${g.count} ${w.occurrences}</span>` +
    `${g.examples.length ? `<ul style="margin:8px 0 0;padding-left:18px;font-size:13px;">${g.examples.map(example(g)).join("")}</ul>` : ""}</td></tr>`

  const html = `<!doctype html>
<html lang="${language}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>${escapeHtml(subject)}</title></head>
<body style="margin:0;padding:0;background:#f4f5f7;font-family:Arial,Helvetica,sans-serif;color:#1f2933;font-size:14px;line-height:1.45;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f4f5f7;border-collapse:collapse;"><tr><td align="center" style="padding:16px 8px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="max-width:640px;width:100%;background:#ffffff;border-collapse:collapse;table-layout:fixed;">
<tr><td style="padding:16px 16px 8px;border-top:6px solid ${COLORS[report.status]};">
<h1 style="margin:0 0 4px;font-size:20px;color:${COLORS[report.status]};">${title}</h1>
<p style="margin:0;color:#616e7c;word-break:break-word;">${w.partner}${w.colon} <strong>${escapeHtml(report.partner)}</strong> · ${w.delivery}${w.colon} <strong>${escapeHtml(report.delivery)}</strong></p>
${reason ? `<p style="margin:12px 0 0;padding:10px;background:#fdf2f2;border-left:4px solid ${COLORS[report.status]};word-break:break-word;">${escapeHtml(reason)}</p>` : ""}
<p style="margin:12px 0 0;color:#616e7c;font-size:12px;">${w.policy}${w.colon} ${escapeHtml(report.policy)} · ${w.duration}${w.colon} ${seconds(report.durationMs)}</p>
</td></tr>
<tr><td style="padding:8px 16px;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed;font-size:13px;">
<colgroup><col><col style="width:17%"><col style="width:19%"><col style="width:19%"></colgroup>
<tr><th style="${th}">${w.file}</th><th style="${th}text-align:right;">${w.read}</th><th style="${th}text-align:right;">${w.loaded}</th><th style="${th}text-align:right;">${w.rejected}</th></tr>
${fileRows}${totalRow}
</table></td></tr>
${report.errors.length ? `<tr><td style="padding:8px 16px;"><h2 style="margin:8px 0;font-size:16px;">${w.errors}</h2>
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="border-collapse:collapse;table-layout:fixed;">${report.errors.map(group).join("")}</table>
<p style="margin:12px 0 0;">${w.fix}</p><p style="margin:4px 0 0;color:#616e7c;font-size:12px;">${w.attached}</p></td></tr>` : ""}
<tr><td style="padding:16px;color:#9aa5b1;font-size:12px;border-top:1px solid #e4e7eb;">${w.footer}</td></tr>
</table></td></tr></table></body></html>`

  const text = [
    title,
    `${w.partner}: ${report.partner} · ${w.delivery}: ${report.delivery}`,
    ...(reason ? ["", reason] : []),
    `${w.policy}: ${report.policy} · ${w.duration}: ${seconds(report.durationMs)}`,
    "",
    ...report.files.map((f) =>
      `${f.file}${f.dataset ? ` (${f.dataset})` : ""}: ${w.read} ${f.read}, ${w.loaded} ${f.loaded}, ${w.rejected} ${f.rejected}` +
      (f.problem ? `\n  ${say(f.problem.message, language)}` : "")
    ),
    `${w.total}: ${w.read} ${t.read}, ${w.loaded} ${t.loaded}, ${w.rejected} ${t.rejected}`,
    ...(report.errors.length
      ? [
        "",
        `${w.errors}:`,
        ...report.errors.flatMap((g) => [
          `- ${say(g.message, language)} [${g.rule}, ${g.count} ${w.occurrences}]`,
          ...g.examples.map((r) => `    ${where(r, w)}: ${say(r.message, language)}${r.value === undefined ? "" : ` (${w.value}: ${shorten(r.value)})`}`)
        ]),
        "",
        w.fix,
        w.attached
      ]
      : []),
    "",
    w.footer
  ].join("\n")

  return { subject, html, text }
}

const csvCell = (value: string | number): string => {
  const text = String(value)
  return /[";,\n\r]/.test(text) ? `"${text.replaceAll("\"", "\"\"")}"` : text
}

/**
 * The rejections as CSV for spreadsheets: UTF-8 with a byte-order mark so accents open correctly,
 * `;`-separated in French (what French spreadsheet settings expect), `,` in English.
 */
export const errorsCsv = (rejections: Iterable<Rejection>, language: Language): string => {
  let csv = errorsCsvHeader(language)
  for (const r of rejections) csv += errorsCsvRow(r, language)
  return csv
}

/** The start of `errorsCsv`: byte-order mark and header line; rows follow from `errorsCsvRow`, for a CSV streamed row by row. */
export const errorsCsvHeader = (language: Language): string => {
  const header = language === "fr"
    ? ["fichier", "enregistrement", "ligne", "octet", "chemin", "règle", "message", "valeur"]
    : ["file", "record", "line", "byte", "path", "rule", "message", "value"]
  return `\uFEFF${header.join(separatorOf(language))}\r\n`
}

/** One line of `errorsCsv`. */
export const errorsCsvRow = (r: Rejection, language: Language): string =>
  `${[r.file, r.index, r.line, r.offset, r.path, r.rule, r.message[language], r.value ?? ""].map(csvCell).join(separatorOf(language))}\r\n`

const separatorOf = (language: Language) => (language === "fr" ? ";" : ",")
