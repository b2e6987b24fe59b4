import { createHmac, timingSafeEqual } from "node:crypto"

/**
 * The one signature scheme of webhook bodies, both ways: our webhook checks it in `hmac` mode and
 * a partner's webhook receives reports signed with it. The header's value is
 * `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`; the timestamp lets a receiver refuse
 * a replayed request.
 */
export const SIGNATURE_HEADER = "x-loaders-signature"

/** The header's value for `body` signed with `secret` at `timestamp` (unix seconds). */
export const signBody = (secret: string, timestamp: number, body: string): string =>
  `t=${timestamp},v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`

/** The timestamp of a header value that has the scheme's shape, else `undefined`. */
export const signatureTimestamp = (signature: string): number | undefined => {
  const match = /^t=(\d+),v1=[0-9a-f]{64}$/.exec(signature)
  return match ? Number(match[1]) : undefined
}

/** Whether a secret someone sent is the expected one, in time that does not tell how much of it matched. */
export const sameSecret = (given: string, expected: string): boolean => {
  const a = Buffer.from(given)
  const b = Buffer.from(expected)
  return a.length === b.length && timingSafeEqual(a, b)
}
