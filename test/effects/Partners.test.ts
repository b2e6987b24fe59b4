// The partners file's portal addresses: found whatever their case, and refused at start when two
// partners list the same one (it would open one partner's portal to the other's people).
import { describe, expect, test } from "bun:test"
import { ConfigProvider, Effect, Exit, Layer } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Partners } from "../../src/effects/Partners.ts"

const load = (settings: unknown) => {
  const path = join(mkdtempSync(join(tmpdir(), "loaders-partners-")), "partners.json")
  writeFileSync(path, JSON.stringify(settings))
  return Effect.runPromiseExit(
    Partners.use((partners) => Effect.succeed(partners)).pipe(
      Effect.provide(Partners.layer.pipe(Layer.provide(ConfigProvider.layer(ConfigProvider.fromEnv({ env: { LOADERS_PARTNERS_FILE: path } })))))
    )
  )
}

const failureOf = (exit: Exit.Exit<unknown, unknown>) => (Exit.isFailure(exit) ? String(exit.cause.reasons.map((reason) => reason._tag === "Fail" ? (reason.error as Error).message : reason._tag)) : "succeeded")

describe("portal addresses in the partners file", () => {
  test("an address finds its partner in any case; an unlisted one finds none", async () => {
    const exit = await load({ acme: { portal: ["Ops@Acme.test"] }, globex: { portal: ["data@globex.test"] } })
    if (Exit.isFailure(exit)) throw new Error(failureOf(exit))
    expect(["ops@acme.test", " OPS@ACME.TEST ", "data@globex.test", "ops@globex.test"].map(exit.value.partnerOfEmail)).toEqual(["acme", "acme", "globex", undefined])
  })

  test("the same address under two partners (whatever its case) stops the start, naming both", async () => {
    const message = failureOf(await load({ acme: { portal: ["ops@acme.test"] }, globex: { portal: ["OPS@acme.test"] } }))
    expect(message).toContain(`ops@acme.test is listed under both "acme" and "globex": a portal address reaches one partner only`)
  })

  test("an address that is not one is refused with its path", async () => {
    const message = failureOf(await load({ acme: { portal: ["not an address"] } }))
    expect(message).toContain("acme.portal[0]")
  })
})
