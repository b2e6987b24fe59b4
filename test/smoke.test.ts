import { expect, test } from "bun:test"
import { Effect } from "effect"
import { runScoped } from "./support/effect.ts"

test("effect helper runs a scoped effect and surfaces failures", async () => {
  expect(await runScoped(Effect.succeed(42))).toBe(42)
  await expect(runScoped(Effect.fail("boom"))).rejects.toThrow("boom")
})
