import { Effect } from "effect"
import type { Contract } from "../../schemas/contract.ts"
import type { Dataset, Decoded } from "../../schemas/Dataset.ts"
import type { Manifest, ManifestFile } from "../../schemas/Manifest.ts"
import { datasets } from "../../schemas/registry.ts"
import { type DeliveryFolder, MANIFEST, nameInFolder } from "../domain/DeliveryFolder.ts"
import type { ObjectInfo } from "../domain/ObjectInfo.ts"
import { fileFormat } from "../stream/FileFormat.ts"
import { loadManifest } from "./loadManifest.ts"
import { problems } from "./problems.ts"
import type { ReportBuilder } from "./Report.ts"

/** A data file of the delivery, matched to its dataset and format. */
export interface PlannedFile {
  readonly object: ObjectInfo
  /** Its name in the delivery folder. */
  readonly name: string
  readonly dataset: Dataset
  /** The dataset's decoder for this file: the partner's unknown-field rule, the version the manifest names. */
  readonly decode: (value: unknown) => Decoded
  /** The dataset's reader of common records from their bytes, when the file follows its current version. */
  readonly reader: Dataset["reader"]
  readonly gzip: boolean
  readonly ndjson: boolean
  /** What the manifest says of it, if it lists it. */
  readonly expected: ManifestFile | undefined
}

/** The folder's manifest when it has a valid one; an unusable manifest is a delivery problem. */
export const readManifest = Effect.fnUntraced(function*(folder: DeliveryFolder, builder: ReportBuilder) {
  const loaded = yield* loadManifest(folder)
  if (loaded._tag === "Invalid") builder.problem(MANIFEST, null, problems.invalidManifest(loaded.details))
  return loaded._tag === "Valid" ? loaded.manifest : undefined
})

/**
 * Matches each data object to a dataset through the partner's contract, in loading order
 * (registry order, then name); every mismatch with the manifest, unknown format, unknown or
 * forbidden dataset, or unknown version is reported as a file problem.
 */
export const planFiles = (folder: DeliveryFolder, manifest: Manifest | undefined, contract: Contract, builder: ReportBuilder) => {
  const planned: Array<PlannedFile> = []
  const present = new Set<string>()
  for (const object of folder.objects) {
    const name = nameInFolder(folder.key, object.key)
    present.add(name)
    const base = name.slice(name.lastIndexOf("/") + 1)
    if (base.startsWith("_") || base.startsWith(".")) continue
    const expected = manifest?.files.find((f) => f.name === name)
    const format = fileFormat(base)
    if (!format) {
      builder.problem(name, expected?.dataset ?? null, problems.unknownFormat(name))
      continue
    }
    const found = contract.datasetOf(base.replace(/\.gz$/i, ""), expected?.dataset)
    if (found._tag === "Unknown") {
      builder.problem(name, expected?.dataset ?? null, problems.unknownDataset(name, found.allowed))
      continue
    }
    if (found._tag === "NotAllowed") {
      builder.problem(name, found.dataset, problems.datasetNotAllowed(name, found.dataset, found.allowed))
      continue
    }
    const { dataset } = found
    builder.file(name, dataset.name)
    const decode = dataset.decoderFor({ unknownFields: contract.unknownFields(dataset), version: expected?.version })
    if (decode === undefined) {
      builder.problem(name, dataset.name, problems.unknownVersion(dataset, expected?.version ?? dataset.version))
      continue
    }
    if (expected?.size !== undefined && expected.size !== object.size) {
      builder.problem(name, dataset.name, problems.sizeMismatch(expected.size, object.size))
      continue
    }
    const current = (expected?.version ?? dataset.version) === dataset.version
    planned.push({ object, name, dataset, decode, reader: current ? dataset.reader : undefined, ...format, expected })
  }
  for (const entry of manifest?.files ?? []) {
    if (!present.has(entry.name)) builder.problem(entry.name, entry.dataset, problems.missingFile(entry.name))
  }
  const order = (d: Dataset) => datasets.indexOf(d)
  return planned.sort((a, b) => order(a.dataset) - order(b.dataset) || a.name.localeCompare(b.name))
}
