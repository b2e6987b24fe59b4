import { describe, expect, test } from "bun:test"
import { Schema } from "effect"
import { contractOf, globToRegExp } from "../../schemas/contract.ts"
import { PartnerSettings } from "../../schemas/PartnerConfig.ts"

const settings = (value: unknown) => Schema.decodeUnknownSync(PartnerSettings)(value, { onExcessProperty: "error" })

/** What `datasetOf` answers, in a word: the dataset's name, `Unknown`, or `NotAllowed:<dataset>`. */
const verdict = (found: ReturnType<ReturnType<typeof contractOf>["datasetOf"]>) =>
  found._tag === "Dataset" ? found.dataset.name : found._tag === "NotAllowed" ? `NotAllowed:${found.dataset}` : "Unknown"

describe("partner contracts", () => {
  test("globs match the whole name: * within a folder, ** across, ? one character, the rest literally", () => {
    const cases: Array<[string, string, boolean]> = [
      ["*.json", "GB.json", true],
      ["*.json", "GB.json.bak", false],
      ["*.json", "sub/GB.json", false],
      ["**.json", "sub/GB.json", true],
      ["??.json", "GB.json", true],
      ["??.json", "GBR.json", false],
      ["cities+(1).json", "cities+(1).json", true],
      ["a.b", "axb", false]
    ]
    for (const [glob, name, matches] of cases) expect([glob, name, globToRegExp(glob).test(name)]).toEqual([glob, name, matches])
  })

  test("a file's dataset: the manifest's, else the contract's patterns in order, else the dataset's own name; others not allowed", () => {
    const contract = contractOf(settings({
      contract: {
        datasets: { cities: { unknownFields: "keep" }, properties: {} },
        files: [{ regex: "^[A-Z]{2}\\.json$", dataset: "cities" }, { glob: "*.json", dataset: "properties" }],
        policy: { mode: "threshold", max_rejected_ratio: 0.1 }
      }
    }))
    expect(contract.datasets.map((d) => d.name)).toEqual(["properties", "cities"])
    expect(verdict(contract.datasetOf("GB.json", undefined))).toBe("cities")
    expect(verdict(contract.datasetOf("export.json", undefined))).toBe("properties")
    expect(verdict(contract.datasetOf("leases.ndjson", undefined))).toBe("NotAllowed:leases")
    expect(verdict(contract.datasetOf("GB.json", "transactions"))).toBe("NotAllowed:transactions")
    expect(verdict(contract.datasetOf("notes.txt", undefined))).toBe("Unknown")
    expect(contract.unknownFields(contract.datasets[1]!)).toBe("keep")
    expect(contract.unknownFields(contract.datasets[0]!)).toBe("reject")
    expect(contract.policy).toEqual({ mode: "threshold", maxRejectedRatio: 0.1 })
  })

  test("without a contract: every dataset, by its own name, unknown fields rejected, no policy of its own", () => {
    const open = contractOf(settings({ notify: ["ops@example.org"] }))
    expect(open.datasets.map((d) => d.name)).toEqual(["properties", "leases", "transactions", "cities"])
    expect(verdict(open.datasetOf("GB.json", undefined))).toBe("Unknown")
    expect(open.unknownFields(open.datasets[3]!)).toBe("reject")
    expect(open.policy).toBeUndefined()
  })
})
