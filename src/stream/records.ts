import { Effect, Stream } from "effect"
import { gunzip } from "./gunzip.ts"
import { DEFAULT_MAX_DEPTH, DEFAULT_MAX_RECORD_BYTES, JsonSplitter } from "./JsonSplitter.ts"
import { type DecompressError, JsonSyntaxError, type RawRecord } from "./RawRecord.ts"

export interface RecordsOptions {
  /** Name reported with every record and error. */
  readonly file: string
  readonly ndjson: boolean
  readonly gzip: boolean
  /** Key of the records array when the file is an object wrapping it. */
  readonly recordsKey: string
  readonly maxDepth?: number
  readonly maxRecordBytes?: number
  /** Reads a record straight from its bytes, or answers undefined to have it parsed (`SplitterOptions.reader`). */
  readonly reader?: ((bytes: Uint8Array, start: number, end: number) => unknown) | undefined
}

const isNonEmpty = <A>(array: Array<A>): array is [A, ...Array<A>] => array.length > 0

const splitting = (run: () => Array<RawRecord>) =>
  Effect.try({
    try: run,
    catch: (error) => {
      if (error instanceof JsonSyntaxError) return error
      throw error
    }
  })

/**
 * The records of a delivery file, from its bytes: a JSON array, an object wrapping the array, or
 * NDJSON, optionally gzipped. Pulled: bytes are read only as records are demanded, and the records
 * of each input chunk come out together as one chunk.
 */
export const records = <E, R>(
  bytes: Stream.Stream<Uint8Array, E, R>,
  options: RecordsOptions
): Stream.Stream<RawRecord, E | JsonSyntaxError | DecompressError, R> =>
  Stream.suspend(() => {
    const splitter = new JsonSplitter({
      file: options.file,
      layout: options.ndjson ? "ndjson" : "json",
      recordsKey: options.recordsKey,
      maxDepth: options.maxDepth ?? DEFAULT_MAX_DEPTH,
      maxRecordBytes: options.maxRecordBytes ?? DEFAULT_MAX_RECORD_BYTES,
      reader: options.reader
    })
    const source = options.gzip ? gunzip(bytes, options.file) : bytes
    return source.pipe(
      Stream.mapEffect((chunk) => splitting(() => splitter.push(chunk))),
      Stream.concat(Stream.fromEffect(splitting(() => splitter.end()))),
      Stream.filter(isNonEmpty),
      Stream.flattenArray
    )
  })
