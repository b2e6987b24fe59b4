/**
 * Partner API keys: how one is made, and the only form in which the partners file keeps it.
 * Pure: node's crypto and nothing of ours.
 */
import { createHash, randomBytes } from "node:crypto"
import { Schema } from "effect"
import { check } from "./fields/rules.ts"

const HASH = /^sha256:[0-9a-f]{64}$/

/**
 * How the partners file holds an API key: `sha256:<64 lowercase hex>` of the key. A plain SHA-256
 * is enough here, unlike for passwords: keys are 256 random bits, so there is no dictionary to
 * try and no salt or slow hash would make guessing one from its hash any harder.
 */
export const ApiKeyHash = Schema.String.check(
  check<string>(
    "api_key.hash",
    {
      en: `Must be an API key's hash, "sha256:" then 64 lowercase hexadecimal characters (npm run partner-key prints it).`,
      fr: `Doit être l'empreinte d'une clé d'API, "sha256:" puis 64 caractères hexadécimaux minuscules (npm run partner-key l'affiche).`
    },
    (s) => HASH.test(s)
  )
)

/** The hash under which the partners file knows `key`. */
export const hashApiKey = (key: string): string => `sha256:${createHash("sha256").update(key, "utf8").digest("hex")}`

/** A fresh API key: 32 random bytes, base64url, with a prefix that says what it is when it leaks into a log. */
export const newApiKey = (): string => `lk_${randomBytes(32).toString("base64url")}`
