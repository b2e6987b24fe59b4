import { afterAll } from "bun:test"
import { spawnSync } from "node:child_process"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { createServer, type Server } from "node:net"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))

/** AWS CLI v2 from Debian; a pyenv shim named `aws` may come first on PATH. */
export const AWS = "/usr/bin/aws"

/**
 * Runs `bun src/entrypoints/<script>` as a user would, to its end, with `settings` as its only
 * loaders configuration (the test's own `LOADERS_*` and `DATABASE_URL` are left out).
 */
export const runEntrypoint = (script: string, args: ReadonlyArray<string>, settings: Record<string, string>) => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL") env[name] = value
  }
  const result = spawnSync(process.execPath, [join(ROOT, "src/entrypoints", script), ...args], {
    cwd: ROOT,
    env: { ...env, ...settings },
    encoding: "utf8",
    timeout: 120_000
  })
  return { status: result.status, out: result.stdout, err: result.stderr }
}

/** The AWS CLI against `endpoint` with `credentials`, no profile or config file of the machine. */
export const aws = (endpoint: string, credentials: { readonly id: string; readonly secret: string }, args: ReadonlyArray<string>) => {
  const result = spawnSync(AWS, ["--endpoint-url", endpoint, ...args], {
    env: {
      PATH: process.env.PATH ?? "",
      HOME: process.env.HOME ?? "/tmp",
      AWS_ACCESS_KEY_ID: credentials.id,
      AWS_SECRET_ACCESS_KEY: credentials.secret,
      AWS_REGION: "us-east-1",
      AWS_CONFIG_FILE: "/dev/null",
      AWS_SHARED_CREDENTIALS_FILE: "/dev/null"
    },
    encoding: "utf8",
    timeout: 60_000
  })
  return { status: result.status, out: result.stdout, err: result.stderr }
}

/** Holds loopback `port` (any free one when 0) until `close`; `held` is false when another process has it. */
export const holdPort = (port = 0) =>
  new Promise<{ readonly port: number; readonly held: boolean; readonly close: () => Promise<void> }>((resolve, reject) => {
    const server: Server = createServer()
    server.once("error", (error: NodeJS.ErrnoException) =>
      error.code === "EADDRINUSE" ? resolve({ port, held: false, close: async () => {} }) : reject(error))
    server.listen(port, "127.0.0.1", () => {
      const address = server.address()
      resolve({
        port: typeof address === "object" && address ? address.port : port,
        held: true,
        close: () => new Promise<void>((done) => server.close(() => done()))
      })
    })
  })

/** Temporary directories named `loaders-<name>-…`, removed once the file's tests are done. */
export const tempDirs = (name: string) => {
  const dirs: Array<string> = []
  afterAll(() => {
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  })
  return () => {
    const dir = mkdtempSync(join(tmpdir(), `loaders-${name}-`))
    dirs.push(dir)
    return dir
  }
}

/** Only `LOADERS_EMBEDDED_DIR`: the embedded S3, PGlite and the outbox under `dir`, S3 on any free port. */
export const embeddedSettings = (dir: string): Record<string, string> => ({
  LOADERS_EMBEDDED_DIR: dir,
  LOADERS_OUTBOX_DIR: join(dir, "outbox"),
  LOADERS_EMBEDDED_S3_PORT: "0"
})
