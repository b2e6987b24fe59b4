import { Buffer } from "node:buffer"
import { Schema } from "effect"
import { check } from "./rules.ts"

/** Key types an OpenSSH client offers and ssh2 verifies, with the number of fields of their blob. */
const FIELDS: Readonly<Record<string, number>> = {
  "ssh-ed25519": 2, // type, key
  "ssh-rsa": 3, // type, e, n
  "ecdsa-sha2-nistp256": 3, // type, curve, point
  "ecdsa-sha2-nistp384": 3,
  "ecdsa-sha2-nistp521": 3
}
export const SSH_KEY_TYPES = Object.keys(FIELDS)

/** The length-prefixed fields of an SSH key blob, or `undefined` when they do not fill it exactly. */
const fields = (blob: Buffer): Array<Buffer> | undefined => {
  const out: Array<Buffer> = []
  for (let at = 0; at < blob.length;) {
    if (at + 4 > blob.length) return undefined
    const length = blob.readUInt32BE(at)
    if (at + 4 + length > blob.length) return undefined
    out.push(blob.subarray(at + 4, at + 4 + length))
    at += 4 + length
  }
  return out
}

/**
 * Whether `line` is an OpenSSH public key line (`<type> <base64 blob> [comment]`, as in a `.pub`
 * file) whose blob holds exactly its type's fields, the first naming the type itself: a truncated
 * or mispasted key fails here, at start, rather than at a partner's first login.
 */
const isPublicKeyLine = (line: string): boolean => {
  const [type = "", encoded = ""] = line.trim().split(/\s+/)
  const expected = FIELDS[type]
  if (expected === undefined || !/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return false
  const parts = fields(Buffer.from(encoded, "base64"))
  return parts !== undefined && parts.length === expected && parts[0]!.toString("latin1") === type &&
    parts.every((part) => part.length > 0)
}

/** One OpenSSH public key line, e.g. `ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA… partner@laptop`. */
export const SshPublicKey = Schema.String.check(
  check<string>(
    "ssh_key.format",
    {
      en: `Must be an OpenSSH public key line as in a .pub file ("ssh-ed25519 AAAA… comment"; types: ${SSH_KEY_TYPES.join(", ")}).`,
      fr: `Doit être une ligne de clé publique OpenSSH comme dans un fichier .pub (« ssh-ed25519 AAAA… commentaire » ; types : ${
        SSH_KEY_TYPES.join(", ")
      }).`
    },
    isPublicKeyLine
  )
)
