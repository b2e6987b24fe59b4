import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Layer, Redacted, Schedule } from "effect"
import { mkdtempSync, readdirSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type Mail, Mailer } from "../../src/effects/Mailer.ts"
import { runTest } from "../support/effect.ts"
import { captureServer } from "../support/capture.ts"

const mail: Mail = {
  to: ["compta@acme.example"],
  cc: ["ops@loaders.example"],
  subject: "[loaders] acme / d1 : Livraison refusée",
  html: "<p>Livraison refusée</p>",
  text: "Livraison refusée",
  attachments: [{ filename: "errors.csv", content: "\uFEFFfichier;règle\r\nt.json;iban\r\n", contentType: "text/csv; charset=utf-8" }],
  idempotencyKey: "report-acme-d1-42"
}

const resend = (baseUrl: string, outboxDir: string) =>
  Mailer.layerResend({
    apiKey: Redacted.make("re_test_key"),
    from: "loaders <reports@loaders.example>",
    outboxDir,
    baseUrl,
    retry: Schedule.max([Schedule.spaced("10 millis"), Schedule.recurs(3)])
  })

const send = Mailer.use((mailer) => mailer.send(mail))

// The stand-in answers errors the way Resend's API does: `{"statusCode", "name", "message"}`.
describe("Mailer through the real Resend SDK, against a local stand-in for its API", () => {
  test("sends the whole message once: from, to, cc, subject, html, text, attachment, idempotency key", async () => {
    const api = await captureServer(() => ({ status: 200, body: { id: "email-1" } }))
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    expect(await runTest(send, resend(api.url, outbox))).toEqual({ via: "resend", id: "email-1" })
    expect(api.requests.length).toBe(1)
    const [request] = api.requests
    expect(request?.path).toBe("/emails")
    expect(request?.headers["authorization"]).toBe("Bearer re_test_key")
    expect(request?.headers["idempotency-key"]).toBe("report-acme-d1-42")
    const body = JSON.parse(request?.body ?? "{}")
    expect(body).toMatchObject({
      from: "loaders <reports@loaders.example>",
      to: ["compta@acme.example"],
      cc: ["ops@loaders.example"],
      subject: mail.subject,
      html: mail.html,
      text: mail.text
    })
    expect(body.attachments[0].filename).toBe("errors.csv")
    expect(Buffer.from(body.attachments[0].content, "base64").toString("utf8")).toBe(mail.attachments[0]!.content)
    expect(readdirSync(outbox)).toEqual([])
  })

  test("a 500 then a 200: retried with the same idempotency key, sent exactly once", async () => {
    const api = await captureServer((index) => (index === 0 ? { status: 500, body: { statusCode: 500, name: "internal_server_error", message: "boom" } } : { status: 200, body: { id: "email-2" } }))
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    expect(await runTest(send, resend(api.url, outbox))).toEqual({ via: "resend", id: "email-2" })
    expect(api.requests.map((r) => [r.headers["idempotency-key"]])).toEqual([["report-acme-d1-42"], ["report-acme-d1-42"]])
    expect(readdirSync(outbox)).toEqual([])
  })

  test("a lasting failure keeps the message in the outbox, with why", async () => {
    const api = await captureServer(() => ({ status: 503, body: { statusCode: 503, name: "service_unavailable", message: "down" } }))
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    const sent = await runTest(send, resend(api.url, outbox))
    expect(sent.via).toBe("outbox")
    expect(sent.via === "outbox" && sent.reason).toContain("HTTP 503")
    expect(api.requests.length).toBe(4)
    expect(readdirSync(outbox).sort()).toEqual(["report-acme-d1-42.eml", "report-acme-d1-42.html", "report-acme-d1-42.json"])
  })

  test("a refused message (422) is not retried", async () => {
    const api = await captureServer(() => ({ status: 422, body: { statusCode: 422, name: "validation_error", message: "bad from" } }))
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    const sent = await runTest(send, resend(api.url, outbox))
    expect(sent.via).toBe("outbox")
    expect(api.requests.length).toBe(1)
  })

  test("the outbox keeps a complete MIME message a mail client opens", async () => {
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    expect(await runTest(send, Mailer.layerOutbox(outbox))).toEqual({ via: "outbox", path: join(outbox, "report-acme-d1-42.eml") })
    const eml = readFileSync(join(outbox, "report-acme-d1-42.eml"), "utf8")
    expect(eml).toContain("To: compta@acme.example")
    expect(eml).toContain(`Subject: =?UTF-8?B?${Buffer.from(mail.subject).toString("base64")}?=`)
    expect(eml).toContain("Content-Type: text/html; charset=utf-8")
    expect(eml).toContain('Content-Disposition: attachment; filename="errors.csv"')
    expect(await Effect.runPromise(Effect.succeed(readFileSync(join(outbox, "report-acme-d1-42.html"), "utf8")))).toBe(mail.html)
  })

  test("the outbox's message is from LOADERS_MAIL_FROM, or the default sender", async () => {
    const fromEnv = (env: Record<string, string>) => Mailer.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env }))))
    const configured = mkdtempSync(join(tmpdir(), "outbox-"))
    await runTest(send, fromEnv({ LOADERS_OUTBOX_DIR: configured, LOADERS_MAIL_FROM: "Loaders Reports <reports@loaders.example>" }))
    expect(readFileSync(join(configured, "report-acme-d1-42.eml"), "utf8").split("\r\n")[0]).toBe("From: Loaders Reports <reports@loaders.example>")
    const fallback = mkdtempSync(join(tmpdir(), "outbox-"))
    await runTest(send, fromEnv({ LOADERS_OUTBOX_DIR: fallback }))
    expect(readFileSync(join(fallback, "report-acme-d1-42.eml"), "utf8").split("\r\n")[0]).toBe("From: loaders <reports@loaders.invalid>")
  })

  test("a message without recipients has no empty To: header", async () => {
    const outbox = mkdtempSync(join(tmpdir(), "outbox-"))
    await runTest(Mailer.use((mailer) => mailer.send({ ...mail, to: [], cc: [] })), Mailer.layerOutbox(outbox))
    const headers = readFileSync(join(outbox, "report-acme-d1-42.eml"), "utf8").split("\r\n\r\n")[0] ?? ""
    expect(headers).not.toMatch(/^To:/m)
    expect(headers).not.toMatch(/^Cc:/m)
  })
})
