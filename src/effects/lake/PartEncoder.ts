import type { Cell, Column } from "../../../schemas/Dataset.ts"
import type { Filled, StagedRecord } from "../Sink.ts"

/**
 * Which run's rows a part holds: the lineage columns every lake row carries beside its dataset's
 * own, so a reader knows the partner, delivery, run, file and record of each row.
 */
export interface PartLineage {
  readonly partner: string
  readonly delivery: string
  readonly runId: string
}

/** The lineage columns, after the dataset's own, in every part. */
export const LINEAGE_COLUMNS: ReadonlyArray<Column> = [
  { name: "_partner", type: "text", nullable: false },
  { name: "_delivery", type: "text", nullable: false },
  { name: "_run", type: "bigint", nullable: false },
  { name: "_file", type: "text", nullable: false },
  { name: "_record", type: "bigint", nullable: false }
]

/** A dataset's columns as the lake writes them: its own, then the lineage. */
export const lakeColumns = (columns: ReadonlyArray<Column>): ReadonlyArray<Column> => [...columns, ...LINEAGE_COLUMNS]

/**
 * Turns a batch's rows into the bytes of one part, as they come: what `add` and `finish` answer is
 * appended to the part in order.
 */
export interface PartEncoder {
  readonly add: (batch: ReadonlyArray<Pick<StagedRecord, "row" | "file" | "index">>, filled: ReadonlyArray<Filled>) => Promise<ReadonlyArray<Uint8Array>>
  /** The last bytes of the part (a Parquet footer, the end of a gzip stream). */
  readonly finish: () => Promise<ReadonlyArray<Uint8Array>>
  /** Bytes taken but not answered yet (text not compressed yet, at its own size): for rolling parts. */
  readonly held: () => number
}

/**
 * Makes the encoder of one new part of a dataset with these (own) columns; `keys` names its
 * natural key, which readers look rows up by.
 */
export type PartEncoderFactory = (columns: ReadonlyArray<Column>, lineage: PartLineage, keys: ReadonlyArray<string>) => PartEncoder

/** A part being encoded that can be thrown away (its run did not commit). */
export interface DiscardablePart extends PartEncoder {
  readonly discard: () => void
}

/** Where a format's parts are encoded, and how that place is closed. */
export interface PartEncoders {
  readonly part: (columns: ReadonlyArray<Column>, lineage: PartLineage, keys: ReadonlyArray<string>) => DiscardablePart
  readonly close: () => void
}

/** Parts encoded on the calling thread: thrown away with their memory. */
export const inThread = (factory: PartEncoderFactory): PartEncoders => ({
  part: (columns, lineage, keys) => ({ ...factory(columns, lineage, keys), discard: () => undefined }),
  close: () => undefined
})

/**
 * The cell reader of a batch: a dataset column's value (an enrichment's when it filled the column)
 * or a lineage value, by position in `lakeColumns`.
 */
export const batchCells = (
  columns: ReadonlyArray<Column>,
  lineage: PartLineage,
  batch: ReadonlyArray<Pick<StagedRecord, "row" | "file" | "index">>,
  filled: ReadonlyArray<Filled>
) => {
  const own = columns.length
  const fills = columns.map((_, position) => filled.find((f) => f.position === position)?.values)
  const run = Number(lineage.runId)
  return (i: number, c: number): Cell => {
    if (c < own) {
      const fill = fills[c]
      return fill === undefined ? batch[i]!.row[c]! : fill[i]!
    }
    switch (c - own) {
      case 0:
        return lineage.partner
      case 1:
        return lineage.delivery
      case 2:
        return run
      case 3:
        return batch[i]!.file
      default:
        return batch[i]!.index
    }
  }
}
