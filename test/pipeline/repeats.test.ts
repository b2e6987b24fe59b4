import { describe, expect, test } from "bun:test"
import { handMade } from "../support/datasets.ts"
import type { StagedRecord } from "../../src/effects/Sink.ts"
import { firstOfEachKey, repeatIssue } from "../../src/pipeline/repeats.ts"

/** Keyed on two columns, to check that the key is the pair and not either column. */
const pairs = handMade({
  name: "pairs",
  filePattern: /^pairs\.json$/,
  recordsKey: "records",
  table: "pairs",
  columns: [
    { name: "label", type: "text", nullable: true },
    { name: "a", type: "text", nullable: false },
    { name: "b", type: "integer", nullable: false }
  ],
  naturalKey: ["a", "b"]
})

const record = (file: string, index: number, a: string, b: number): StagedRecord => ({
  file,
  index,
  line: index + 1,
  offset: 0,
  row: [`record ${index}`, a, b]
})

describe("firstOfEachKey", () => {
  test("keeps the first record of each natural key in the batch and points each repeat at it", () => {
    const batch = [
      record("x.json", 0, "k", 1),
      record("x.json", 1, "k", 2),
      record("y.json", 0, "k", 1),
      record("y.json", 1, "j", 1),
      record("y.json", 2, "k", 2)
    ]
    const { unique, repeats } = firstOfEachKey(pairs, batch)
    expect(unique.map((r) => [r.file, r.index])).toEqual([["x.json", 0], ["x.json", 1], ["y.json", 1]])
    expect(repeats).toEqual([
      { position: 2, firstFile: "x.json", firstIndex: 0 },
      { position: 4, firstFile: "x.json", firstIndex: 1 }
    ])
  })

  test("the rejection names the key's columns and the first record, in both languages", () => {
    const issue = repeatIssue(pairs, { position: 2, firstFile: "x.json", firstIndex: 0 })
    expect(issue.rule).toBe("duplicate_key")
    expect(issue.message.en).toBe("Same a, b as record 0 of x.json: a record may appear only once per delivery.")
    expect(issue.message.fr).toContain("que l'enregistrement 0 de x.json")
  })
})
