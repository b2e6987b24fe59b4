import { Context, Data, Effect } from "effect"
import { spawn } from "node:child_process"
import { accessSync, constants, mkdirSync } from "node:fs"
import { delimiter, join } from "node:path"
import { createInterface } from "node:readline"
import { fileURLToPath } from "node:url"

/** The embedded S3 server could not start. */
export class EmbeddedS3Error extends Data.TaggedError("EmbeddedS3Error")<{ readonly reason: string }> {
  override get message(): string {
    return `embedded S3 server: ${this.reason}`
  }
}

/**
 * The port asked for the embedded S3 server (`LOADERS_EMBEDDED_S3_PORT`) is in use by another
 * process, maybe another loaders process on the embedded defaults (whose S3 is then reachable there).
 */
export class EmbeddedS3PortTaken extends Data.TaggedError("EmbeddedS3PortTaken")<{ readonly port: number }> {
  override get message(): string {
    return `embedded S3 server: port ${this.port} (LOADERS_EMBEDDED_S3_PORT) is in use by another process: ` +
      `stop that process, or set LOADERS_EMBEDDED_S3_PORT to a free port (0: any free port)`
  }
}

/** Where the embedded S3 listens unless `LOADERS_EMBEDDED_S3_PORT` says otherwise. */
export const EMBEDDED_S3_PORT = 4569

/** The credentials the embedded S3 server accepts (s3rver's fixed pair). */
export const EMBEDDED_S3_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const

/**
 * An S3 event notification as s3rver reports it: AWS's `{"Records": [...]}`, one record per event,
 * its key URL-encoded as S3 encodes it.
 */
export type S3rverEvent = Readonly<Record<string, unknown>>

export interface EmbeddedS3 {
  readonly endpoint: string
  readonly port: number
  /** Credentials s3rver accepts. */
  readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  /** Registers a listener for every Put/Copy/Post event; returns a function that removes it. */
  readonly onEvent: (listener: (event: S3rverEvent) => void) => () => void
}

/**
 * The object events of the embedded S3 server this process started; absent on a bucket of the
 * user's (`LOADERS_S3_BUCKET`), whose events come through the webhook or SQS instead.
 */
export class EmbeddedS3Events extends Context.Service<EmbeddedS3Events, {
  /** Registers a listener for every Put/Copy/Post notification; returns a function that removes it. */
  readonly subscribe: (listener: (event: S3rverEvent) => void) => () => void
}>()("loaders/EmbeddedS3Events") {}

const CHILD = fileURLToPath(new URL("./s3rver-child.cjs", import.meta.url))

/**
 * Node's absolute path from PATH. Spawning plain `node` is not enough: Deno intercepts that name
 * and runs the script itself, and s3rver needs the real Node.
 */
const nodeBinary = (): string | undefined =>
  (process.env.PATH ?? "")
    .split(delimiter)
    .map((dir) => join(dir, "node"))
    .find((candidate) => {
      try {
        accessSync(candidate, constants.X_OK)
        return true
      } catch {
        return false
      }
    })

/**
 * Starts s3rver over `directory` on loopback `port` (default 0: any free port), with `buckets` created, for
 * the scope. A taken port fails with `EmbeddedS3PortTaken`, or with `fallback` is replaced by any
 * free one (the answer's `port` says which). It runs under Node (it cannot run inside Bun), as a
 * child that exits with its parent.
 */
export const startEmbeddedS3 = (options: {
  readonly directory: string
  readonly buckets: ReadonlyArray<string>
  readonly port?: number
  readonly fallback?: boolean
}) =>
  Effect.gen(function*() {
    yield* Effect.try({
      try: () => mkdirSync(options.directory, { recursive: true }),
      catch: (error) => new EmbeddedS3Error({ reason: `cannot create ${options.directory}: ${String(error)}` })
    })
    const node = nodeBinary()
    if (!node) return yield* new EmbeddedS3Error({ reason: "Node.js (node) is not on PATH; the embedded S3 server runs under it" })
    const child = yield* Effect.acquireRelease(
      Effect.sync(() =>
        spawn(
          node,
          ["--openssl-legacy-provider", CHILD, JSON.stringify({
            directory: options.directory,
            buckets: options.buckets,
            port: options.port ?? 0,
            fallback: options.fallback ?? false
          })],
          { stdio: ["pipe", "pipe", "pipe"] }
        )
      ),
      (child) =>
        Effect.callback<void>((resume) => {
          if (child.exitCode !== null || child.signalCode !== null) return resume(Effect.void)
          child.once("exit", () => resume(Effect.void))
          child.stdin?.end()
          child.kill("SIGTERM")
        })
    )
    const listeners = new Set<(event: S3rverEvent) => void>()
    let stderr = ""
    child.stderr?.on("data", (data: Buffer) => {
      stderr += data.toString()
    })
    const port = yield* Effect.callback<number, EmbeddedS3Error | EmbeddedS3PortTaken>((resume) => {
      const lines = createInterface({ input: child.stdout! })
      lines.on("line", (line) => {
        const message = JSON.parse(line) as { ready?: { port: number }; taken?: number; event?: S3rverEvent }
        if (message.ready) resume(Effect.succeed(message.ready.port))
        else if (message.taken !== undefined) resume(Effect.fail(new EmbeddedS3PortTaken({ port: message.taken })))
        else if (message.event) for (const listener of listeners) listener(message.event)
      })
      child.once("error", (error) => resume(Effect.fail(new EmbeddedS3Error({ reason: `cannot run node: ${error.message}` }))))
      child.once("exit", (code) =>
        resume(Effect.fail(new EmbeddedS3Error({ reason: `exited with code ${code}: ${stderr.trim()}` })))
      )
    }).pipe(
      Effect.timeoutOrElse({
        duration: "30 seconds",
        orElse: () => Effect.fail(new EmbeddedS3Error({ reason: "did not start within 30 s" }))
      })
    )
    return {
      endpoint: `http://127.0.0.1:${port}`,
      port,
      credentials: EMBEDDED_S3_CREDENTIALS,
      onEvent: (listener) => {
        listeners.add(listener)
        return () => listeners.delete(listener)
      }
    } satisfies EmbeddedS3
  })
