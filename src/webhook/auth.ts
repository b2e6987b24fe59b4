import { Clock, Duration, Effect, Redacted } from "effect"
import { createHmac, timingSafeEqual } from "node:crypto"
import { Unauthorized } from "./errors.ts"
import type { WebhookSettings } from "./WebhookConfig.ts"

const sameSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}

/** `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, what `hmac` mode expects. */
export const signBody = (secret: string, timestamp: number, body: string): string =>
  `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

/**
 * Checks a direct (S3, MinIO) or EventBridge delivery against the shared secret: a bearer token,
 * or an HMAC of the timestamped body. Reasons never echo what was sent.
 */
export const authenticate = Effect.fnUntraced(function*(
  settings: WebhookSettings,
  headers: { readonly get: (name: string) => string | null },
  body: string
) {
  if (!settings.secret) {
    return yield* new Unauthorized({ reason: "no webhook secret is configured (LOADERS_WEBHOOK_SECRET): only SNS deliveries are accepted" })
  }
  const secret = Redacted.value(settings.secret)
  if (settings.auth === "bearer") {
    const header = headers.get("authorization") ?? ""
    const token = /^Bearer (.+)$/i.exec(header)?.[1]
    if (!token) return yield* new Unauthorized({ reason: "missing Authorization: Bearer token" })
    if (!sameSecret(token, secret)) return yield* new Unauthorized({ reason: "wrong bearer token" })
    return
  }
  const signature = headers.get("x-loaders-signature") ?? ""
  const match = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(signature)
  if (!match) return yield* new Unauthorized({ reason: "missing or malformed X-Loaders-Signature (t=<unix seconds>,v1=<hex>)" })
  const timestamp = Number(match[1])
  const now = (yield* Clock.currentTimeMillis) / 1000
  if (Math.abs(now - timestamp) > Duration.toSeconds(settings.tolerance)) {
    return yield* new Unauthorized({ reason: "signature timestamp too far from now (replayed or clock skew)" })
  }
  if (!sameSecret(signBody(secret, timestamp, body), signature)) return yield* new Unauthorized({ reason: "wrong signature" })
})
