import { Context, Data, Effect, type Scope } from "effect"
import type { Cell, Dataset, Row } from "../../schemas/Dataset.ts"
import type { DeliveryKey } from "../domain/DeliveryFolder.ts"
import type { RecordPosition } from "../stream/RawRecord.ts"
import type { DatabaseError } from "./Database.ts"
import type { ObjectStoreError } from "./ObjectStore.ts"

/** A valid record on its way to a destination, with where it came from (its lineage). */
export interface StagedRecord extends RecordPosition {
  readonly row: Row
}

/** A record whose natural key this run already wrote from another record (the first one wins). */
export interface Repeat {
  /** Position of the repeat in the batch handed to `write`. */
  readonly position: number
  readonly firstFile: string
  readonly firstIndex: number
}

/** The values a destination computed for one column (an enrichment), one per record of a batch. */
export interface Filled {
  /** The column's position in `Dataset.columns`. */
  readonly position: number
  readonly values: ReadonlyArray<Cell>
}

/** How the rows a destination took landed, when it compares them with what it holds. */
export interface RowChanges {
  /** Rows of keys it did not hold. */
  readonly inserted: number
  /** Rows of keys it held with other values: rewritten. */
  readonly updated: number
  /** Rows it held already, the same: not written at all. */
  readonly unchanged: number
}

export interface WriteResult {
  /** Rows the destination took. */
  readonly loaded: number
  /** Records it did not take because this run already wrote their key (from an earlier batch). */
  readonly repeats: ReadonlyArray<Repeat>
  /**
   * Columns the destination filled from what it holds (PostgreSQL's enrichments), handed to the
   * destinations after it so every copy of a row has the same values.
   */
  readonly filled?: ReadonlyArray<Filled>
}

/** Where a destination makes a dataset's rows of the run visible when it commits. */
export interface Landing {
  readonly sink: string
  readonly dataset: string
  readonly rows: number
  /** Object keys (the lake's parts and manifest); empty for a table. */
  readonly paths: ReadonlyArray<string>
  /**
   * How the rows landed, from a destination that compares them with what it holds: the report's
   * count for the dataset (a destination may know it only at commit, after the last batch).
   */
  readonly changes?: RowChanges
}

/**
 * The destination cannot finish this run from one reading of the delivery (e.g. PostgreSQL's
 * fast path met a key already loaded): the run is spoilt, and the delivery must be read again
 * into a new run of every sink (`SinkRun.pass` 2), which then takes the slower, general way.
 */
export class ReadAgain extends Data.TaggedError("ReadAgain")<{
  readonly sink: string
  readonly reason: string
}> {
  override get message(): string {
    return `${this.sink}: ${this.reason}; the delivery is read again`
  }
}

/** The faults of the destinations there are: infrastructure, never the partner's doing. */
export type SinkError = DatabaseError | ObjectStoreError

/** Which run a sink is opened for. */
export interface SinkRun {
  /** The delivery being loaded. */
  readonly delivery: DeliveryKey
  /** The ledger's run: every row written carries it. */
  readonly runId: string
  /** 1 on the first reading of the delivery; 2 once a sink asked to `ReadAgain`. */
  readonly pass: 1 | 2
}

/**
 * One run's writes to a destination. Nothing written is visible to readers until `commit`;
 * closing the scope without committing throws everything away.
 */
export interface SinkWriter {
  /**
   * `earlier`: what the dataset's destination before this one made of the batch — the columns it
   * filled and the repeats it refused — so every copy of the delivery holds the same rows.
   */
  readonly write: (
    dataset: Dataset,
    batch: ReadonlyArray<StagedRecord>,
    earlier?: Pick<WriteResult, "filled" | "repeats">
  ) => Effect.Effect<WriteResult, SinkError | ReadAgain>
  /**
   * Makes the run's writes visible, all or nothing, together with `fence`: it runs inside the
   * commit (it joins a database transaction through the services it uses), and when it fails
   * nothing is made visible. The ledger uses it to record the run's outcome with its rows.
   */
  readonly commit: <E, R>(fence: Effect.Effect<void, E, R>) => Effect.Effect<void, SinkError | ReadAgain | E, R>
  /** What the commit makes visible where, per dataset; complete once the fence runs. */
  readonly landings?: () => ReadonlyArray<Landing>
}

/** A writer that takes every row and keeps none: what a dry run writes to. */
export const discarding: SinkWriter = {
  write: (_, batch) => Effect.succeed({ loaded: batch.length, repeats: [] }),
  commit: (fence) => fence
}

/**
 * Where a delivery's validated rows land. The pipeline only opens a run, writes batches and
 * commits; what a destination needs (a SQL session, a staging prefix) stays inside its layer.
 */
export class Sink extends Context.Service<Sink, {
  readonly begin: (run: SinkRun) => Effect.Effect<SinkWriter, SinkError, Scope.Scope>
}>()("loaders/Sink") {
  /**
   * Several destinations as one, each taking the datasets `takes` answers yes for: a run opens
   * every one, a batch goes to each that takes its dataset, and they commit all or nothing — each
   * commit runs inside the one before it, the fence innermost, so a failure anywhere leaves every
   * later one unopened and every earlier one uncommitted.
   */
  static readonly all = (sinks: ReadonlyArray<{ readonly sink: Sink["Service"]; readonly takes: (dataset: Dataset) => boolean }>) =>
    Sink.of({
      begin: (run) =>
        Effect.forEach(sinks, ({ sink, takes }) => Effect.map(sink.begin(run), (writer) => ({ writer, takes }))).pipe(
          Effect.map((writers): SinkWriter => ({
            write: (dataset, batch) =>
              Effect.gen(function*() {
                let result: WriteResult | undefined
                for (const { writer, takes } of writers) {
                  if (!takes(dataset)) continue
                  const written = yield* writer.write(dataset, batch, result)
                  // The first destination of a dataset answers for it in the report, and tells the
                  // later ones what it filled in and refused.
                  result ??= written
                }
                return result ?? { loaded: 0, repeats: [] }
              }),
            commit: <E, R>(fence: Effect.Effect<void, E, R>) =>
              writers.reduceRight<Effect.Effect<void, SinkError | ReadAgain | E, R>>((inner, { writer }) => writer.commit(inner), fence),
            landings: () => writers.flatMap(({ writer }) => writer.landings?.() ?? [])
          }))
        )
    })
}
