/**
 * The lake's NDJSON encoders on a thread of their own (`workerEncoders.ts` is the other side): each
 * request carries one batch of one part as JSON, and is answered, in order, with the part's next
 * bytes, transferred rather than copied.
 */
import type { Cell, Column } from "../../../schemas/Dataset.ts"
import { collectGarbageSoon } from "../gcHint.ts"
import type { Filled } from "../Sink.ts"
import { ndjsonPart } from "./NdjsonPart.ts"
import type { PartEncoder, PartLineage } from "./PartEncoder.ts"

/** What the sink's thread asks. `batch` is an `EncodedBatch` as JSON. */
export type EncoderRequest =
  | {
    readonly op: "open"
    readonly part: number
    readonly columns: ReadonlyArray<Column>
    readonly lineage: PartLineage
  }
  | { readonly op: "add"; readonly part: number; readonly batch: string }
  | { readonly op: "finish"; readonly part: number }
  /** A part thrown away (its run did not commit). */
  | { readonly op: "drop"; readonly part: number }

/** The answer to each request: the bytes it produced and what the part holds back, or why it failed. */
export type EncoderAnswer =
  | { readonly ok: true; readonly chunks: ReadonlyArray<Uint8Array>; readonly held: number }
  | { readonly ok: false; readonly error: string }

/** A batch as the sink's thread sends it: rows, the columns filled for them, their files and indexes. */
export type EncodedBatch = readonly [
  rows: ReadonlyArray<ReadonlyArray<Cell>>,
  fills: ReadonlyArray<Filled>,
  files: ReadonlyArray<string>,
  indexes: ReadonlyArray<number>
]

/** The worker's global scope, as much of it as is used (the DOM's typings describe a window). */
interface WorkerScope {
  onmessage: (event: MessageEvent<EncoderRequest>) => void
  postMessage: (message: EncoderAnswer, transfer: Array<ArrayBuffer>) => void
}
const scope = globalThis as unknown as WorkerScope

const parts = new Map<number, PartEncoder>()

/**
 * JSON taken since the last collection: every batch is garbage once encoded, and this thread's
 * heap is its own, which the sink thread's collections (`bunMemory.ts`) do not reach.
 */
let taken = 0
const COLLECT_AFTER = 16 << 20

const handle = async (request: EncoderRequest): Promise<EncoderAnswer> => {
  if (request.op === "open") {
    parts.set(request.part, ndjsonPart(request.columns, request.lineage))
    return { ok: true, chunks: [], held: 0 }
  }
  if (request.op === "drop") {
    parts.delete(request.part)
    return { ok: true, chunks: [], held: 0 }
  }
  const encoder = parts.get(request.part)
  if (encoder === undefined) throw new Error(`part ${request.part} is not open`)
  if (request.op === "finish") {
    parts.delete(request.part)
    return { ok: true, chunks: await encoder.finish(), held: 0 }
  }
  taken += request.batch.length
  if (taken > COLLECT_AFTER) {
    taken = 0
    collectGarbageSoon()
  }
  const [rows, fills, files, indexes] = JSON.parse(request.batch) as EncodedBatch
  const batch = rows.map((row, i) => ({ row, file: files[i]!, index: indexes[i]! }))
  return { ok: true, chunks: await encoder.add(batch, fills), held: encoder.held() }
}

// One request at a time, in the order sent: a part's bytes must come out in order.
let queue: Promise<void> = Promise.resolve()
scope.onmessage = (event) => {
  const request = event.data
  queue = queue.then(() =>
    handle(request).then(
      (answer) => scope.postMessage(answer, answer.ok ? answer.chunks.map((c) => c.buffer as ArrayBuffer) : []),
      (error: unknown) => scope.postMessage({ ok: false, error: error instanceof Error ? error.message : String(error) }, [])
    )
  )
}
