import { Config, Effect } from "effect"
import { readFileSync } from "node:fs"
import type { Manifest } from "../../schemas/Manifest.ts"
import { Mailer } from "../effects/Mailer.ts"
import type { DeliveryReport, Rejection } from "./Report.ts"
import { errorsCsv, type Language, renderReportEmail } from "./reportEmail.ts"

/** What became of the report email, recorded in the report itself. */
export type Notification =
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "resend"; readonly id: string }
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "outbox"; readonly path: string; readonly reason?: string }
  | { readonly channel: "email"; readonly to: ReadonlyArray<string>; readonly via: "failed"; readonly reason: string }

/** Rows of the attached CSV at most; the archive's `_errors.ndjson` always has them all. */
const CSV_ROWS = 10_000

const rejectionsIn = (path: string, limit: number): Array<Rejection> =>
  readFileSync(path, "utf8")
    .split("\n", limit)
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as Rejection)

/**
 * Emails the delivery's report to the partner (the manifest's `notify` addresses, in its language,
 * French by default) with the operators (`LOADERS_OPERATORS_EMAIL`) in copy, and the rejections as a
 * CSV attachment. Never fails the delivery: what happened is returned, to go into the report.
 */
export const notifyReport = Effect.fn("notifyReport")(function*(
  report: DeliveryReport,
  manifest: Manifest | undefined,
  errorsPath: string | undefined
) {
  const mailer = yield* Mailer
  const operators = (yield* Config.String("LOADERS_OPERATORS_EMAIL").pipe(Config.withDefault(""), Effect.orElseSucceed(() => "")))
    .split(",")
    .map((address) => address.trim())
    .filter((address) => address.length > 0)
  const language: Language = manifest?.language ?? "fr"
  const email = renderReportEmail(report, language)
  const to = manifest?.notify.length ? [...manifest.notify] : operators
  const cc = manifest?.notify.length ? operators : []
  const attachments = errorsPath && report.totals.invalid + report.errors.length > 0
    ? [{ filename: "errors.csv", content: errorsCsv(rejectionsIn(errorsPath, CSV_ROWS), language), contentType: "text/csv; charset=utf-8" }]
    : []
  const idempotencyKey = `report-${report.partner}-${report.delivery}-${report.runId ?? report.startedAt}`
  return yield* mailer.send({ to, cc, ...email, attachments, idempotencyKey }).pipe(
    Effect.map((sent): Notification => ({ channel: "email", to, ...sent })),
    Effect.catch((error) =>
      Effect.logError(`report email for ${report.partner}/${report.delivery} lost: ${error.message}`).pipe(
        Effect.as<Notification>({ channel: "email", to, via: "failed", reason: error.message })
      )
    )
  )
})
