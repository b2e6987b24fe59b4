import { type ChildProcess, spawn } from "node:child_process"
import { createServer } from "node:net"
import { fileURLToPath } from "node:url"
import { onStop } from "./services.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))

export const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0))
    })
  })

/** The two launchers, as `bun run serve` and `deno task serve` start them. */
export const launchers = {
  Bun: [process.execPath, ["src/entrypoints/serve.bun.ts"]],
  Deno: [
    `${ROOT}node_modules/deno/deno`,
    ["run", "--allow-net", "--allow-env", "--allow-sys", "--allow-read", "--allow-write", "--allow-run", "--allow-ffi", "src/entrypoints/serve.deno.ts"]
  ]
} as const

export type Runtime = keyof typeof launchers

/** The environment that points a server at a test bucket and database. */
export const serverEnv = (
  s3: { readonly endpoint: string; readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string } },
  bucket: string,
  databaseUrl: string
): Record<string, string> => ({
  LOADERS_S3_BUCKET: bucket,
  LOADERS_S3_ENDPOINT: s3.endpoint,
  AWS_ACCESS_KEY_ID: s3.credentials.accessKeyId,
  AWS_SECRET_ACCESS_KEY: s3.credentials.secretAccessKey,
  AWS_REGION: "us-east-1",
  DATABASE_URL: databaseUrl
})

/**
 * Starts the HTTP server on `runtime` as a subprocess on a free port with `env` (and `serveArgs`,
 * e.g. `--no-workers`), and waits until `/healthz` answers. Stopped at the end of the run if still alive.
 */
export const startServer = async (runtime: Runtime, env: Record<string, string>, serveArgs: ReadonlyArray<string> = []) => {
  const [command, args] = launchers[runtime]
  const port = await freePort()
  let output = ""
  const child: ChildProcess = spawn(command, [...args, ...serveArgs], {
    cwd: ROOT,
    env: { ...process.env, ...env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"]
  })
  onStop(async () => {
    if (child.exitCode === null) child.kill("SIGKILL")
  })
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const base = `http://127.0.0.1:${port}`
  for (let i = 0; ; i++) {
    if (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) break
    if (i > 600 || child.exitCode !== null) throw new Error(`${runtime} server did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    base,
    child,
    output: () => output,
    /** Sends SIGTERM and resolves with the exit code. */
    stop: () => terminate(child)
  }
}

/** Sends SIGTERM to `child` and resolves with its exit code (at once if it has already exited). */
const terminate = (child: ChildProcess) =>
  new Promise<number | null>((resolve) => {
    if (child.exitCode !== null) return resolve(child.exitCode)
    child.once("exit", (code) => resolve(code))
    child.kill("SIGTERM")
  })

/**
 * Starts `npm run worker` as a subprocess with `env`, and waits until it takes jobs (its log says
 * so). Stopped at the end of the run if still alive.
 */
export const startWorker = async (env: Record<string, string>) => {
  let output = ""
  const child: ChildProcess = spawn(process.execPath, ["src/entrypoints/worker.ts"], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  onStop(async () => {
    if (child.exitCode === null) child.kill("SIGKILL")
  })
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  for (let i = 0; !output.includes("taking delivery jobs"); i++) {
    if (i > 600 || child.exitCode !== null) throw new Error(`the worker did not start:\n${output}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  return {
    child,
    output: () => output,
    /** Sends SIGTERM and resolves with the exit code. */
    stop: () => terminate(child)
  }
}
