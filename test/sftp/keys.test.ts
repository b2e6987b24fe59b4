import { describe, expect, test } from "bun:test"
import { Effect } from "effect"
import { readFileSync, statSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { hostKey } from "../../src/sftp/keys.ts"
import { tempDirs } from "../support/cli.ts"
import { sshKey } from "../support/sftp.ts"

const fresh = tempDirs("sftp-keys")

describe("the SFTP host key", () => {
  test("made once, readable by its owner only, then the same key at every start", async () => {
    const path = join(fresh(), "keys", "host_key")
    const first = await Effect.runPromise(hostKey(path))
    expect(first.created).toBe(true)
    expect(first.fingerprint).toMatch(/^SHA256:[A-Za-z0-9+/]{43}$/)
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(readFileSync(`${path}.pub`, "utf8")).toStartWith("ssh-ed25519 ")
    const again = await Effect.runPromise(hostKey(path))
    expect(again).toMatchObject({ created: false, fingerprint: first.fingerprint })
  })

  test("2,000 keys made in a row all parse: ssh2 drops a leading zero byte about once in 250, and such a key is made again", async () => {
    const dir = fresh()
    const prints = new Set<string>()
    for (let i = 0; i < 2000; i++) prints.add((await Effect.runPromise(hostKey(join(dir, `k${i}`)))).fingerprint)
    expect(prints.size).toBe(2000)
  })

  test("a file that is no usable private key stops the start, naming the variable and the file", async () => {
    const dir = fresh()
    const garbage = join(dir, "garbage")
    writeFileSync(garbage, "not a key\n")
    const publicOnly = sshKey(dir, "public")
    const cases: Array<[string, string]> = [[garbage, "expected an unencrypted OpenSSH private key"], [`${publicOnly.path}.pub`, "this is a public key"]]
    for (const [path, why] of cases) {
      const error = await Effect.runPromise(Effect.flip(hostKey(path)))
      expect(error.message).toStartWith(`LOADERS_SFTP_HOST_KEY=${path}: `)
      expect(error.message).toContain(why)
    }
  })
})
