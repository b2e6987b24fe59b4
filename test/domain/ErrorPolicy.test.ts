import { expect, test } from "bun:test"
import { accepts, describePolicy } from "../../src/domain/ErrorPolicy.ts"

test("each error policy decides on the share of rejected records", () => {
  expect(accepts({ mode: "strict" }, 1000, 0)).toBe(true)
  expect(accepts({ mode: "strict" }, 1000, 1)).toBe(false)
  expect(accepts({ mode: "lenient" }, 1000, 999)).toBe(true)
  const threshold = { mode: "threshold", maxRejectedRatio: 0.05 } as const
  expect(accepts(threshold, 1000, 50)).toBe(true)
  expect(accepts(threshold, 1000, 51)).toBe(false)
  expect(accepts(threshold, 0, 0)).toBe(true)
  expect(describePolicy(threshold)).toBe("threshold (max 5.00% rejected)")
})
