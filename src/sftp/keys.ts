import { Data, Effect } from "effect"
import { createHash, timingSafeEqual } from "node:crypto"
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { type ParsedKey, type PublicKeyAuthContext, utils } from "ssh2"

/** The SFTP server cannot start: its host key or its port; `reason` names the variable at fault. */
export class SftpServerError extends Data.TaggedError("SftpServerError")<{ readonly reason: string }> {
  override get message(): string {
    return this.reason
  }
}

/** `SHA256:…`, as `ssh-keygen -l` and OpenSSH's client show a key. */
export const fingerprint = (publicBlob: Uint8Array): string =>
  `SHA256:${createHash("sha256").update(publicBlob).digest("base64").replace(/=+$/, "")}`

/**
 * A new ed25519 key pair in OpenSSH's format. ssh2's generator drops a public key's leading zero
 * byte (about 1 key in 250 here), and its own parser then refuses the private key: such a pair is
 * made again.
 */
const newHostKey = () => {
  for (;;) {
    const pair = utils.generateKeyPairSync("ed25519", { comment: "loaders sftp host key" })
    if (!(utils.parseKey(pair.private) instanceof Error)) return pair
  }
}

/**
 * The server's host key from `path`, made there (ed25519, readable by its owner only) the first
 * time: clients remember it, so it must stay the same from one start to the next.
 */
export const hostKey = (path: string) =>
  Effect.gen(function*() {
    const fail = (what: string) => new SftpServerError({ reason: `LOADERS_SFTP_HOST_KEY=${path}: ${what}` })
    const created = !existsSync(path)
    if (created) {
      yield* Effect.try({
        try: () => {
          const pair = newHostKey()
          mkdirSync(dirname(path), { recursive: true })
          // `wx`: another process starting at the same moment keeps its own key rather than losing it.
          writeFileSync(path, pair.private, { mode: 0o600, flag: "wx" })
          writeFileSync(`${path}.pub`, `${pair.public}\n`)
        },
        catch: (error) => fail(`could not write a new host key (${error instanceof Error ? error.message : String(error)})`)
      })
    }
    const text = yield* Effect.try({
      try: () => readFileSync(path),
      catch: (error) => fail(`could not be read (${error instanceof Error ? error.message : String(error)})`)
    })
    const key = utils.parseKey(text)
    if (key instanceof Error || !key.isPrivateKey()) {
      return yield* fail(`expected an unencrypted OpenSSH private key (${key instanceof Error ? key.message : "this is a public key"})`)
    }
    // Tightened again in case the file was copied in with looser rights.
    yield* Effect.sync(() => chmodSync(path, 0o600)).pipe(Effect.ignore)
    return { key: text, fingerprint: fingerprint(key.getPublicSSH()), created }
  })

/** A partner's allowed public keys, parsed (the partners file was validated at start, so each parses). */
export const parseKeys = (lines: ReadonlyArray<string>): Array<ParsedKey> =>
  lines.flatMap((line) => {
    const parsed = utils.parseKey(line)
    return parsed instanceof Error ? [] : [parsed]
  })

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b)

/**
 * Whether the client's public key is one of `allowed` and, when it signed (the second step of the
 * publickey method), whether the signature over the session's data is that key's. A client only
 * asking whether a key would do (no signature yet) is told yes for an allowed key.
 */
export const keyAccepted = (ctx: PublicKeyAuthContext, allowed: ReadonlyArray<ParsedKey>): boolean => {
  const key = allowed.find((candidate) => candidate.type === ctx.key.algo && sameBytes(candidate.getPublicSSH(), ctx.key.data))
  if (key === undefined) return false
  if (ctx.signature === undefined || ctx.blob === undefined) return true
  return key.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true
}
