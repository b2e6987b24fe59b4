// Runs s3rver in a Node child process (it cannot run inside Bun, and its list continuation tokens
// need `node --openssl-legacy-provider`). Protocol on stdout, one JSON object per line:
//   {"ready":{"port":N}} once listening, then {"event":{...}} for each S3 event s3rver reports (an S3
//   notification, `{"Records": [...]}`, keys URL-encoded as S3 encodes them);
//   {"taken":N} (then exit) when port N is in use and the configuration has no `fallback`; with
//   `fallback`, a taken port is replaced by any free one.
// Exits when its stdin closes, so it never outlives the process that started it.
"use strict"
const http = require("node:http")
const S3rver = require("s3rver")

const fail = (message) => {
  process.stderr.write(`s3rver-child: ${message}\n`)
  process.exit(1)
}

let config
try {
  config = JSON.parse(process.argv[2] ?? "")
} catch {
  fail("expected a JSON configuration as the first argument")
}

const server = new S3rver({
  address: config.address ?? "127.0.0.1",
  port: config.port ?? 0,
  directory: config.directory,
  silent: true,
  configureBuckets: (config.buckets ?? []).map((name) => ({ name }))
})

// S3 URL-encodes the keys of its notifications (form encoding, `+` for a space, `/` kept); s3rver
// reports them as stored. Encoded here, so the parent reads them as it reads S3's own.
const encodeKey = (key) => key.split("/").map((segment) => encodeURIComponent(segment).replace(/%20/g, "+")).join("/")

server.on("event", (event) => {
  for (const record of event.Records ?? []) {
    if (record.s3 && record.s3.object && typeof record.s3.object.key === "string") record.s3.object.key = encodeKey(record.s3.object.key)
  }
  process.stdout.write(JSON.stringify({ event }) + "\n")
})

// S3 URL-decodes x-amz-copy-source fully; s3rver uses decodeURI, which leaves %2B, %26, %3F… encoded.
// Re-encode the header the way s3rver decodes it, so keys with + & ? round-trip as they do on S3.
const handle = server.callback()
const httpServer = http.createServer((req, res) => {
  const source = req.headers["x-amz-copy-source"]
  if (typeof source === "string") req.headers["x-amz-copy-source"] = encodeURI(decodeURIComponent(source))
  handle(req, res)
})

const listen = (port) =>
  new Promise((resolve, reject) => {
    httpServer.once("error", reject)
    httpServer.listen(port, config.address ?? "127.0.0.1", () => resolve(httpServer.address()))
  })

const TAKEN = Symbol("taken")

server
  .configureBuckets()
  .then(() => listen(config.port ?? 0))
  .catch((error) => {
    if (error.code !== "EADDRINUSE") throw error
    if (config.fallback) return listen(0)
    process.stdout.write(JSON.stringify({ taken: config.port }) + "\n")
    throw TAKEN
  })
  .then(
    (address) => {
      process.stdout.write(JSON.stringify({ ready: { port: address.port } }) + "\n")
    },
    (error) => (error === TAKEN ? process.exit(1) : fail(`cannot start on ${config.directory}: ${error.message}`))
  )

process.stdin.on("end", () => process.exit(0))
process.stdin.on("close", () => process.exit(0))
process.stdin.resume()
