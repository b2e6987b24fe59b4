import { Config, Context, Data, Effect, Layer, Option, Redacted, Schedule } from "effect"
import { mkdirSync, writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { Resend } from "resend"

export interface MailAttachment {
  readonly filename: string
  readonly content: string
  readonly contentType: string
}

/** An email to send. `idempotencyKey` makes a retried send deliver once. */
export interface Mail {
  readonly to: ReadonlyArray<string>
  readonly cc: ReadonlyArray<string>
  readonly subject: string
  readonly html: string
  readonly text: string
  readonly attachments: ReadonlyArray<MailAttachment>
  readonly idempotencyKey: string
}

/** Where a mail went: sent through Resend, or kept in the local outbox (with why, on a fallback). */
export type Sent =
  | { readonly via: "resend"; readonly id: string }
  | { readonly via: "outbox"; readonly path: string; readonly reason?: string }

/** The mail could not even be written to the outbox (disk full, no permission). */
export class MailerError extends Data.TaggedError("MailerError")<{ readonly reason: string }> {
  override get message(): string {
    return `mail not sent nor kept: ${this.reason}`
  }
}

/** A Resend answer that is worth trying again (5xx, 429, network) or not. */
class ResendFailure extends Data.TaggedError("ResendFailure")<{ readonly reason: string; readonly retryable: boolean }> {}

/**
 * Sends report emails: through Resend when an API key is configured (retried with backoff, with
 * an idempotency key so a retry never sends twice, then kept in the outbox when it keeps failing),
 * otherwise into a local outbox folder, so the default needs no account and nothing is lost.
 */
export class Mailer extends Context.Service<Mailer, {
  readonly send: (mail: Mail) => Effect.Effect<Sent, MailerError>
}>()("loaders/Mailer") {
  /**
   * Mail kept as files in `dir`: `<key>.eml` (the full MIME message, `From: from`), `<key>.html`,
   * `<key>.json`.
   */
  static readonly layerOutbox = (dir: string, from: string = DEFAULT_FROM) =>
    Layer.succeed(Mailer, { send: (mail) => writeOutbox(dir, from, mail) })

  /** Resend (its API at `baseUrl` when given), falling back to the outbox in `outboxDir`. */
  static readonly layerResend = (options: {
    readonly apiKey: Redacted.Redacted<string>
    readonly from: string
    readonly outboxDir: string
    readonly baseUrl?: string | undefined
    readonly retry?: Schedule.Schedule<unknown, ResendFailure>
  }) =>
    Layer.sync(Mailer, () => {
      const client = new Resend(Redacted.value(options.apiKey), options.baseUrl ? { baseUrl: options.baseUrl } : undefined)
      const retry = options.retry ?? Schedule.max([Schedule.exponential("500 millis", 2), Schedule.recurs(4)])
      const attempt = (mail: Mail) =>
        Effect.tryPromise({
          try: () =>
            client.emails.send(
              {
                from: options.from,
                to: [...mail.to],
                ...(mail.cc.length ? { cc: [...mail.cc] } : {}),
                subject: mail.subject,
                html: mail.html,
                text: mail.text,
                attachments: mail.attachments.map((a) => ({ filename: a.filename, content: Buffer.from(a.content), contentType: a.contentType }))
              },
              { idempotencyKey: mail.idempotencyKey }
            ),
          catch: (cause) => new ResendFailure({ reason: cause instanceof Error ? cause.message : String(cause), retryable: true })
        }).pipe(
          Effect.flatMap(({ data, error }) => {
            if (data) return Effect.succeed(data.id)
            const status = error && "statusCode" in error && typeof error.statusCode === "number" ? error.statusCode : undefined
            return Effect.fail(
              new ResendFailure({
                reason: `${error?.name ?? "error"}: ${error?.message ?? "no answer"}${status ? ` (HTTP ${status})` : ""}`,
                retryable: status === undefined || status === 429 || status >= 500
              })
            )
          })
        )
      const send = (mail: Mail) =>
        attempt(mail).pipe(
          Effect.retry({ schedule: retry, while: (failure) => failure.retryable }),
          Effect.map((id): Sent => ({ via: "resend", id })),
          Effect.catchTag("ResendFailure", (failure) =>
            Effect.logWarning(`Resend failed for ${mail.idempotencyKey}: ${failure.reason}; kept in the outbox`).pipe(
              Effect.andThen(writeOutbox(options.outboxDir, options.from, mail)),
              Effect.map((kept): Sent => ({ via: "outbox", path: kept.path, reason: failure.reason }))
            )
          ),
          Effect.withSpan("Mailer.send", { attributes: { "loaders.mail.key": mail.idempotencyKey } })
        )
      return Mailer.of({ send })
    })

  /**
   * From the environment: `RESEND_API_KEY` turns Resend on (`RESEND_BASE_URL` to reach another
   * API endpoint); the outbox is `LOADERS_OUTBOX_DIR` (default `.loaders/outbox`). The sender is
   * `LOADERS_MAIL_FROM` either way.
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const outboxDir = resolve(yield* Config.String("LOADERS_OUTBOX_DIR").pipe(Config.withDefault(".loaders/outbox")))
      const from = yield* Config.String("LOADERS_MAIL_FROM").pipe(Config.withDefault(DEFAULT_FROM))
      const apiKey = yield* Config.option(Config.Redacted("RESEND_API_KEY"))
      if (Option.isNone(apiKey)) return Mailer.layerOutbox(outboxDir, from)
      return Mailer.layerResend({
        apiKey: apiKey.value,
        from,
        outboxDir,
        baseUrl: Option.getOrUndefined(yield* Config.option(Config.String("RESEND_BASE_URL")))
      })
    })
  )
}

/** The sender when `LOADERS_MAIL_FROM` is not set (`.invalid`: nobody can answer it by mistake). */
const DEFAULT_FROM = "loaders <reports@loaders.invalid>"

const safeName = (key: string) => key.replace(/[^A-Za-z0-9._-]+/g, "_")

/** A MIME message (multipart/mixed: text and HTML alternatives, then attachments), as a mail client opens it. */
const mime = (from: string, mail: Mail): string => {
  const mixed = "loaders-mixed"
  const alternative = "loaders-alternative"
  const b64 = (text: string) => Buffer.from(text).toString("base64").replace(/.{76}/g, "$&\r\n")
  const header = (text: string) => `=?UTF-8?B?${Buffer.from(text).toString("base64")}?=`
  return [
    `From: ${from}`,
    // A header without an address is malformed: a mail without recipients has no `To:` at all.
    ...(mail.to.length ? [`To: ${mail.to.join(", ")}`] : []),
    ...(mail.cc.length ? [`Cc: ${mail.cc.join(", ")}`] : []),
    `Subject: ${header(mail.subject)}`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${mixed}"`,
    "",
    `--${mixed}`,
    `Content-Type: multipart/alternative; boundary="${alternative}"`,
    "",
    `--${alternative}`,
    "Content-Type: text/plain; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "",
    b64(mail.text),
    `--${alternative}`,
    "Content-Type: text/html; charset=utf-8",
    "Content-Transfer-Encoding: base64",
    "",
    b64(mail.html),
    `--${alternative}--`,
    ...mail.attachments.flatMap((a) => [
      `--${mixed}`,
      `Content-Type: ${a.contentType}; name="${a.filename}"`,
      `Content-Disposition: attachment; filename="${a.filename}"`,
      "Content-Transfer-Encoding: base64",
      "",
      b64(a.content)
    ]),
    `--${mixed}--`,
    ""
  ].join("\r\n")
}

const writeOutbox = (dir: string, from: string, mail: Mail) =>
  Effect.try({
    try: () => {
      mkdirSync(dir, { recursive: true })
      const base = join(dir, safeName(mail.idempotencyKey))
      writeFileSync(`${base}.eml`, mime(from, mail))
      writeFileSync(`${base}.html`, mail.html)
      writeFileSync(`${base}.json`, JSON.stringify({ from, to: mail.to, cc: mail.cc, subject: mail.subject, attachments: mail.attachments.map((a) => a.filename) }, null, 2))
      return { via: "outbox", path: `${base}.eml` } as const
    },
    catch: (cause) => new MailerError({ reason: `cannot write to the outbox ${dir}: ${cause instanceof Error ? cause.message : String(cause)}` })
  })
