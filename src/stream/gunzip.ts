import { Effect, Stream } from "effect"
import { DecompressError } from "./RawRecord.ts"

/** Carries an upstream failure through the web stream untouched, to tell it from a gzip failure. */
class Upstream<E> {
  constructor(readonly error: E) {}
}

/**
 * Gunzips a byte stream with the web-standard `DecompressionStream` (same code under Bun and
 * Deno), pulled as the consumer reads: no more compressed bytes are fetched than needed. Corrupt
 * or truncated input fails with `DecompressError`; upstream failures pass through unchanged.
 */
export const gunzip = <E, R>(bytes: Stream.Stream<Uint8Array, E, R>, file: string): Stream.Stream<Uint8Array, E | DecompressError, R> =>
  Stream.unwrap(
    Effect.map(Effect.context<R>(), (context) =>
      Stream.fromReadableStream({
        evaluate: () =>
          Stream.toReadableStreamWith(
            bytes.pipe(Stream.mapError((error) => new Upstream(error))),
            context
          // Chunks are plain ArrayBuffer-backed bytes; the DOM typing only rules out shared memory.
          ).pipeThrough(new DecompressionStream("gzip") as unknown as ReadableWritablePair<Uint8Array, Uint8Array>),
        onError: (cause): E | DecompressError =>
          cause instanceof Upstream
            ? (cause.error as E)
            : new DecompressError({ file, reason: cause instanceof Error ? cause.message : String(cause) })
      }))
  )
