import { Config, Context, Effect, Schedule } from "effect"
import type { Manifest } from "../../schemas/Manifest.ts"
import { Mailer } from "../effects/Mailer.ts"
import { Partners } from "../effects/Partners.ts"
import { type PostFailure, postSigned } from "../effects/signedPost.ts"
import type { DeliveryReport, Notification, Rejection } from "./Report.ts"
import { errorsCsv, type Language, renderReportEmail } from "./reportEmail.ts"

/** How a partner webhook is retried: transient failures (5xx, 429, network) only. */
export const WebhookRetry = Context.Reference<Schedule.Schedule<unknown, PostFailure>>("loaders/WebhookRetry", {
  defaultValue: () => Schedule.max([Schedule.exponential("1 second", 2), Schedule.recurs(4)])
})

/** The summary a partner webhook receives: the report without the error examples. */
const summary = (report: DeliveryReport) => ({
  partner: report.partner,
  delivery: report.delivery,
  runId: report.runId,
  status: report.status,
  reason: report.reason,
  startedAt: report.startedAt,
  finishedAt: report.finishedAt,
  totals: report.totals,
  datasets: report.datasets,
  errors: report.errors.map((g) => ({ rule: g.rule, count: g.count, message: g.message })),
  archive: report.archive
})

/**
 * POSTs the report summary to a partner's webhook, signed like our own webhook expects
 * (`domain/Signature.ts`), with an idempotency key; retried with backoff on transient failures.
 */
const postWebhook = (url: string, secret: string, report: DeliveryReport, idempotencyKey: string) =>
  Effect.gen(function*() {
    const retry = yield* WebhookRetry
    const body = JSON.stringify(summary(report))
    return yield* postSigned(url, secret, body, { idempotencyKey, timeout: "30 seconds" }).pipe(
      Effect.retry({ schedule: retry, while: (failure) => failure.retryable }),
      Effect.as<Notification>({ channel: "webhook", url, status: "delivered" }),
      Effect.catch((failure) =>
        Effect.logWarning(`partner webhook ${url} failed: ${failure.reason}`).pipe(
          Effect.as<Notification>({ channel: "webhook", url, status: "failed", reason: failure.reason })
        )
      ),
      Effect.withSpan("notify.webhook", { attributes: { "url.full": url } })
    )
  })

/** A report nobody is configured to receive: said in the log and recorded as skipped, not sent. */
const noRecipient = (report: DeliveryReport) => {
  const reason = `no recipient for partner "${report.partner}": give it a "notify" list in the partners file ` +
    `(LOADERS_PARTNERS_FILE), or a "notify" list in the delivery's _manifest.json, or set LOADERS_OPERATORS_EMAIL`
  return Effect.logWarning(`report email for ${report.partner}/${report.delivery} not sent: ${reason}`).pipe(
    Effect.as<Notification>({ channel: "email", to: [], via: "skipped", reason })
  )
}

/** Rows of the attached CSV at most; the archive's `_errors.ndjson` always has them all. */
export const CSV_ROWS = 10_000

/**
 * Tells the partner: the report by email (to the manifest's `notify` addresses and the partner's
 * configured ones, in the manifest's language, else the partner's, else French; operators from
 * `LOADERS_OPERATORS_EMAIL` in copy; the rejections as a CSV attachment), and the signed summary to
 * the partner's webhook when one is configured. Never fails the delivery: what happened is
 * returned, to go into the report.
 */
export const notifyReport = Effect.fn("notifyReport")(function*(
  report: DeliveryReport,
  manifest: Manifest | undefined,
  /** The first rejections (at most `CSV_ROWS`), attached as a CSV. */
  rejections: ReadonlyArray<Rejection>
) {
  const mailer = yield* Mailer
  const partner = (yield* Partners).get(report.partner)
  const operators = (yield* Config.String("LOADERS_OPERATORS_EMAIL").pipe(Config.withDefault(""), Effect.orElseSucceed(() => "")))
    .split(",")
    .map((address) => address.trim())
    .filter((address) => address.length > 0)
  const language: Language = manifest?.language ?? partner?.language ?? "fr"
  const email = renderReportEmail(report, language)
  const partnerAddresses = [...new Set([...(manifest?.notify ?? []), ...(partner?.notify ?? [])])]
  const to = partnerAddresses.length ? partnerAddresses : operators
  const cc = partnerAddresses.length ? operators : []
  const attachments = rejections.length > 0
    ? [{ filename: "errors.csv", content: errorsCsv(rejections, language), contentType: "text/csv; charset=utf-8" }]
    : []
  const idempotencyKey = `report-${report.partner}-${report.delivery}-${report.runId ?? report.startedAt}`
  const mailed = to.length === 0 ? yield* noRecipient(report) : yield* mailer.send({ to, cc, ...email, attachments, idempotencyKey }).pipe(
    Effect.map((sent): Notification => ({ channel: "email", to, ...sent })),
    Effect.catch((error) =>
      Effect.logError(`report email for ${report.partner}/${report.delivery} lost: ${error.message}`).pipe(
        Effect.as<Notification>({ channel: "email", to, via: "failed", reason: error.message })
      )
    )
  )
  if (!partner?.webhook) return [mailed]
  return [mailed, yield* postWebhook(partner.webhook.url, partner.webhook.secret, report, idempotencyKey)]
})
