import { Clock, Duration, Effect } from "effect"
import { createVerify } from "node:crypto"
import type { SnsMessage } from "../../schemas/events/S3Event.ts"
import { Forbidden, Unauthorized, UpstreamFailed } from "./errors.ts"
import type { WebhookSettings } from "./WebhookConfig.ts"

/** The fields SNS signs, in the order it signs them, per message type. */
const SIGNED: Record<SnsMessage["Type"], ReadonlyArray<keyof SnsMessage>> = {
  Notification: ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
  SubscriptionConfirmation: ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"],
  UnsubscribeConfirmation: ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
}

/** How far ahead of our clock an SNS `Timestamp` may be: clocks disagree a little. */
const CLOCK_SKEW = Duration.minutes(5)

/** The exact text SNS signed for `message`. */
const stringToSign = (message: SnsMessage): string =>
  SIGNED[message.Type].flatMap((field) => (message[field] === undefined ? [] : [`${field}\n${message[field]}\n`])).join("")

/**
 * Verifies SNS messages: signature (version 1 SHA1, version 2 SHA256) against the certificate at
 * `SigningCertURL`, which must match the allowed SNS URL pattern, fetched once and cached; the
 * topic, which must be allowed; and the `Timestamp`, which must be within `snsMaxAge` (replays).
 * Confirms allowed subscriptions by visiting their `SubscribeURL`.
 */
export const makeSnsVerifier = (settings: WebhookSettings) => {
  const certificates = new Map<string, Promise<string>>()

  const certificate = (url: string) =>
    Effect.tryPromise({
      try: () => {
        let pending = certificates.get(url)
        if (!pending) {
          pending = fetch(url).then(async (response) => {
            if (!response.ok) throw new Error(`HTTP ${response.status}`)
            return response.text()
          })
          // A failed fetch is not cached: the next message tries again.
          pending.catch(() => certificates.delete(url))
          certificates.set(url, pending)
        }
        return pending
      },
      catch: (cause) => new Unauthorized({ reason: `cannot fetch the SNS signing certificate: ${cause instanceof Error ? cause.message : String(cause)}` })
    })

  /** A genuine message stays genuine forever: only its signed `Timestamp` tells a replay. */
  const recent = Effect.fnUntraced(function*(message: SnsMessage) {
    const sent = Date.parse(message.Timestamp)
    if (Number.isNaN(sent)) {
      return yield* new Unauthorized({ reason: `SNS Timestamp ${JSON.stringify(message.Timestamp)} is not an ISO 8601 time` })
    }
    const now = yield* Clock.currentTimeMillis
    if (now - sent > Duration.toMillis(settings.snsMaxAge)) {
      return yield* new Unauthorized({
        reason: `SNS message ${message.MessageId} was sent at ${message.Timestamp}, more than ${
          Duration.format(settings.snsMaxAge)
        } ago (LOADERS_SNS_MAX_AGE): refused as a replay`
      })
    }
    if (sent - now > Duration.toMillis(CLOCK_SKEW)) {
      return yield* new Unauthorized({
        reason: `SNS message ${message.MessageId} is dated ${message.Timestamp}, more than ${
          Duration.format(CLOCK_SKEW)
        } ahead of this server's clock`
      })
    }
  })

  const verify = Effect.fnUntraced(function*(message: SnsMessage) {
    if (!settings.snsUrl.test(message.SigningCertURL)) {
      return yield* new Unauthorized({ reason: "SNS SigningCertURL is not an allowed SNS host" })
    }
    if (!settings.snsTopics.includes(message.TopicArn)) {
      return yield* new Forbidden({ reason: `SNS topic ${message.TopicArn} is not allowed (LOADERS_SNS_TOPICS)` })
    }
    yield* recent(message)
    const pem = yield* certificate(message.SigningCertURL)
    const valid = yield* Effect.try({
      try: () =>
        createVerify(message.SignatureVersion === "1" ? "RSA-SHA1" : "RSA-SHA256")
          .update(stringToSign(message), "utf8")
          .verify(pem, message.Signature, "base64"),
      catch: () => new Unauthorized({ reason: "the SNS signing certificate is not usable" })
    })
    if (!valid) return yield* new Unauthorized({ reason: "SNS signature does not match" })
  })

  const confirm = Effect.fnUntraced(function*(message: SnsMessage) {
    const url = message.SubscribeURL
    if (!url || !settings.snsUrl.test(url)) return yield* new Forbidden({ reason: "SubscribeURL is not an allowed SNS host" })
    yield* Effect.tryPromise({
      try: async () => {
        const response = await fetch(url)
        if (!response.ok) throw new Error(`HTTP ${response.status}`)
      },
      catch: (cause) => new UpstreamFailed({ reason: `confirming the subscription failed: ${cause instanceof Error ? cause.message : String(cause)}` })
    })
  })

  return { verify, confirm }
}
