import type { Column } from "../../../schemas/Dataset.ts"
import type { EncodedBatch, EncoderAnswer, EncoderRequest } from "./encoderWorker.ts"
import type { DiscardablePart, PartEncoders, PartLineage } from "./PartEncoder.ts"

/** Batches a part may have in the worker before `add` waits for the oldest. */
const IN_FLIGHT = 2

/**
 * NDJSON encoders that run on one worker thread (`encoderWorker.ts`), so the text of every row
 * leaves the thread that parses and validates: `add` only serializes the batch and posts it,
 * and answers the bytes of the batches the worker has finished, waiting only when `IN_FLIGHT`
 * are still there (backpressure). Bytes come back in the order their batches went.
 */
export const workerEncoders = (): PartEncoders => {
  const worker = new Worker(new URL("./encoderWorker.ts", import.meta.url), { type: "module" })
  // Answers come in request order: each request's promise waits at the front of this list.
  const waiting: Array<{ resolve: (answer: EncoderAnswer & { ok: true }) => void; reject: (error: Error) => void }> = []
  const fail = (error: Error) => {
    for (const w of waiting.splice(0)) w.reject(error)
  }
  worker.onmessage = (event: MessageEvent<EncoderAnswer>) => {
    const next = waiting.shift()
    if (event.data.ok) next?.resolve(event.data)
    else next?.reject(new Error(`lake encoder: ${event.data.error}`))
  }
  worker.onerror = (event) => fail(new Error(`lake encoder thread failed: ${event.message}`))

  const ask = (request: EncoderRequest) => {
    const answer = new Promise<EncoderAnswer & { ok: true }>((resolve, reject) => {
      waiting.push({ resolve, reject })
      worker.postMessage(request)
    })
    // Awaited later, or never for a part thrown away: its failure is seen where it is awaited.
    answer.catch(() => undefined)
    return answer
  }

  let nextPart = 0
  const part = (columns: ReadonlyArray<Column>, lineage: PartLineage): DiscardablePart => {
    const id = nextPart++
    // Each request with the size of the JSON it carried, to estimate what it will add to the part.
    const pending: Array<{ readonly answer: Promise<EncoderAnswer & { ok: true }>; readonly json: number }> = [
      { answer: ask({ op: "open", part: id, columns, lineage }), json: 0 }
    ]
    let held = 0
    let pendingJson = 0
    const seen = { json: 0, bytes: 0 }
    /** The bytes of the requests answered so far (all of them when `all`), in order. */
    const collect = async (all: boolean) => {
      const chunks: Array<Uint8Array> = []
      while (pending.length > (all ? 0 : IN_FLIGHT)) {
        const { answer, json } = pending.shift()!
        const { chunks: out, held: now } = await answer
        chunks.push(...out)
        held = now
        pendingJson -= json
        seen.json += json
        seen.bytes += out.reduce((n, c) => n + c.byteLength, 0)
      }
      return chunks
    }
    return {
      add: (batch, filled) => {
        const encoded: EncodedBatch = [batch.map((r) => r.row), filled, batch.map((r) => r.file), batch.map((r) => r.index)]
        const json = JSON.stringify(encoded)
        pending.push({ answer: ask({ op: "add", part: id, batch: json }), json: json.length })
        pendingJson += json.length
        return collect(false)
      },
      finish: () => {
        pending.push({ answer: ask({ op: "finish", part: id }), json: 0 })
        return collect(true)
      },
      // What the worker holds, and what the batches still on their way will add at the ratio of
      // bytes to JSON seen so far (1 until bytes came back), so parts roll near their size.
      held: () => held + Math.round(pendingJson * (seen.bytes > 0 ? seen.bytes / seen.json : 1)),
      discard: () => void ask({ op: "drop", part: id })
    }
  }
  return { part, close: () => void worker.terminate() }
}
