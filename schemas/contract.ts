/**
 * A partner's contract, resolved for a delivery: which dataset each of its files holds, whether
 * the partner may send it, and how its records are decoded. A partner without a contract may send
 * every dataset under the datasets' own file names, unknown fields rejected.
 */
import type { ErrorPolicy } from "../src/domain/ErrorPolicy.ts"
import type { Dataset, UnknownFields } from "./Dataset.ts"
import { toPolicy } from "./Manifest.ts"
import type { PartnerSettings } from "./PartnerConfig.ts"
import { datasetByName, datasets } from "./registry.ts"

/** Which dataset a file holds, or why it cannot be loaded. */
export type FileDataset =
  | { readonly _tag: "Dataset"; readonly dataset: Dataset }
  /** No dataset by that name (manifest) or no pattern matches (file name). */
  | { readonly _tag: "Unknown"; readonly allowed: ReadonlyArray<string> }
  /** A dataset the partner's contract does not list. */
  | { readonly _tag: "NotAllowed"; readonly dataset: string; readonly allowed: ReadonlyArray<string> }

export interface Contract {
  /** The datasets the partner may send, in loading order. */
  readonly datasets: ReadonlyArray<Dataset>
  /**
   * The dataset of a file: the one its manifest entry names, else the first of the contract's
   * file patterns that matches its name (without `.gz`), else the dataset whose own pattern does.
   */
  readonly datasetOf: (name: string, manifestDataset: string | undefined) => FileDataset
  readonly unknownFields: (dataset: Dataset) => UnknownFields
  /** The partner's default error policy, if its contract sets one. */
  readonly policy: ErrorPolicy | undefined
}

/** A glob as a whole-name regular expression: `*` any run without `/`, `**` any run, `?` one character. */
export const globToRegExp = (glob: string): RegExp =>
  new RegExp(
    `^${
      glob.replace(/\*\*|[*?]|[.+^${}()|[\]\\/]/g, (token) =>
        token === "**" ? ".*" : token === "*" ? "[^/]*" : token === "?" ? "[^/]" : `\\${token}`)
    }$`
  )

/** The contract of a partner with these settings (already validated: names and patterns are sound). */
export const contractOf = (settings: PartnerSettings | undefined): Contract => {
  const contract = settings?.contract
  const allowed = contract ? datasets.filter((d) => d.name in contract.datasets) : datasets
  const names = allowed.map((d) => d.name)
  const patterns = (contract?.files ?? []).map((rule) => ({
    test: rule.glob != null ? globToRegExp(rule.glob) : new RegExp(rule.regex!),
    dataset: datasetByName(rule.dataset)!
  }))
  const judge = (dataset: Dataset | undefined, name: string): FileDataset =>
    dataset === undefined
      ? { _tag: "Unknown", allowed: names }
      : allowed.includes(dataset)
      ? { _tag: "Dataset", dataset }
      : { _tag: "NotAllowed", dataset: name, allowed: names }
  return {
    datasets: allowed,
    datasetOf: (name, manifestDataset) => {
      if (manifestDataset !== undefined) return judge(datasetByName(manifestDataset), manifestDataset)
      const byContract = patterns.find((p) => p.test.test(name))?.dataset
      if (byContract) return judge(byContract, byContract.name)
      const own = datasets.find((d) => d.filePattern.test(name))
      return judge(own, own?.name ?? name)
    },
    unknownFields: (dataset) => contract?.datasets[dataset.name]?.unknownFields ?? "reject",
    policy: toPolicy(contract?.policy)
  }
}
