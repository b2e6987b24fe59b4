/** The core in a Worker: byte chunks in, COPY tuples out (transferred), an acknowledgement per chunk. */
import { makeCore } from "./core.ts"

declare const self: { onmessage: (event: MessageEvent) => void; postMessage: (message: unknown, transfer?: Array<Transferable>) => void }

const core = makeCore((tuples, count) => self.postMessage({ type: "rows", tuples, count }, [tuples.buffer]))
self.onmessage = (event: MessageEvent) => {
  const message = event.data as { readonly type: "chunk"; readonly bytes: Uint8Array } | { readonly type: "end" }
  if (message.type === "chunk") {
    core.push(message.bytes)
    self.postMessage({ type: "taken" })
  } else {
    core.end()
    self.postMessage({ type: "done" })
  }
}
