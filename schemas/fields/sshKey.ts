import { Buffer } from "node:buffer"
import { Schema } from "effect"
import { check } from "./rules.ts"

/** Key types an OpenSSH client offers and ssh2 verifies. */
export const SSH_KEY_TYPES = [
  "ssh-ed25519",
  "ssh-rsa",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521"
] as const

/**
 * Whether `line` is an OpenSSH public key line (`<type> <base64 blob> [comment]`, as in a `.pub`
 * file) whose blob starts with its own type name, as every SSH public key blob does: a truncated
 * or mispasted key fails here, at start, rather than at a partner's first login.
 */
const isPublicKeyLine = (line: string): boolean => {
  const [type = "", blob = ""] = line.trim().split(/\s+/)
  if (!(SSH_KEY_TYPES as ReadonlyArray<string>).includes(type) || !/^[A-Za-z0-9+/]+={0,2}$/.test(blob)) return false
  const bytes = Buffer.from(blob, "base64")
  if (bytes.length < 4 + type.length) return false
  const length = bytes.readUInt32BE(0)
  return length === type.length && bytes.subarray(4, 4 + length).toString("latin1") === type
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
