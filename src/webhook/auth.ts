import { Clock, Duration, Effect, Redacted } from "effect"
import { sameSecret, SIGNATURE_HEADER, signatureTimestamp, signBody } from "../domain/Signature.ts"
import { Unauthorized } from "./errors.ts"
import type { WebhookSettings } from "./WebhookConfig.ts"

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
  const signature = headers.get(SIGNATURE_HEADER) ?? ""
  const timestamp = signatureTimestamp(signature)
  if (timestamp === undefined) {
    return yield* new Unauthorized({ reason: "missing or malformed X-Loaders-Signature (t=<unix seconds>,v1=<hex>)" })
  }
  const now = (yield* Clock.currentTimeMillis) / 1000
  if (Math.abs(now - timestamp) > Duration.toSeconds(settings.tolerance)) {
    return yield* new Unauthorized({ reason: "signature timestamp too far from now (replayed or clock skew)" })
  }
  if (!sameSecret(signBody(secret, timestamp, body), signature)) return yield* new Unauthorized({ reason: "wrong signature" })
})
