import type { Dataset, Row } from "../../schemas/Dataset.ts"
import type { RecordIssue } from "../../schemas/Dataset.ts"
import type { Repeat, StagedRecord } from "../effects/Sink.ts"

/**
 * A record may appear only once per delivery: the first record of each natural key in a batch is
 * kept, the later ones are repeats. Repeats across batches are found by the sink, which holds what
 * the run wrote (`WriteResult.repeats`).
 */
export const firstOfEachKey = (dataset: Dataset, batch: ReadonlyArray<StagedRecord>) => {
  const keyPositions = dataset.naturalKey.map((name) => dataset.columns.findIndex((c) => c.name === name))
  const [single] = keyPositions
  const keyOf = keyPositions.length === 1 && single !== undefined
    ? (row: Row) => String(row[single])
    : (row: Row) => keyPositions.map((i) => String(row[i])).join("\u0000")
  const seen = new Map<string, StagedRecord>()
  const unique: Array<StagedRecord> = []
  const repeats: Array<Repeat> = []
  batch.forEach((record, position) => {
    const key = keyOf(record.row)
    const first = seen.get(key)
    if (first) repeats.push({ position, firstFile: first.file, firstIndex: first.index })
    else {
      seen.set(key, record)
      unique.push(record)
    }
  })
  return { unique, repeats }
}

/** Why a repeat is rejected, pointing at the record that came first. */
export const repeatIssue = (dataset: Dataset, repeat: Repeat): RecordIssue => ({
  path: "$",
  rule: "duplicate_key",
  message: {
    en: `Same ${dataset.naturalKey.join(", ")} as record ${repeat.firstIndex} of ${repeat.firstFile}: a record may appear only once per delivery.`,
    fr: `Même ${dataset.naturalKey.join(", ")} que l'enregistrement ${repeat.firstIndex} de ${repeat.firstFile} : un enregistrement ne peut figurer qu'une fois par livraison.`
  }
})
