import type { DeliveryReport, Rejection } from "../pipeline/Report.ts"

/** One rejection on one line, as `npm run check` prints it: where, which rule, the partner's message. */
export const rejectionLine = (r: Rejection, language: "en" | "fr"): string =>
  `${r.file} record ${r.index} (line ${r.line}): ${r.path} ${r.rule}: ${r.message[language]}${r.value === undefined ? "" : ` (${r.value})`}`

/** What `npm run check` says of a delivery before its rejections: the verdict, counts per file, why. */
export const checkSummary = (report: DeliveryReport, language: "en" | "fr"): Array<string> => [
  `${report.partner}/${report.delivery}: ${report.status === "succeeded" ? "would succeed" : "would fail"} (policy ${report.policy}); ` +
  `read ${report.totals.read}, would load ${report.totals.loaded}, rejected ${report.totals.rejected}`,
  ...report.files.map((f) =>
    `  ${f.file} (${f.dataset ?? "no dataset"}): read ${f.read}, would load ${f.loaded}, rejected ${f.rejected}${
      f.problem ? `; ${f.problem.rule}: ${f.problem.message[language]}` : ""
    }`
  ),
  ...(report.reason ? [report.reason[language]] : [])
]
