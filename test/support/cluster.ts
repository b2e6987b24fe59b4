/**
 * A cluster of loaders processes started from their real launchers, as an operator runs them on
 * several machines: the webhook (`npm run serve -- --no-workers`) and any number of workers
 * (`npm run worker`), each a child process of its own against one PostgreSQL and one bucket, so
 * a test can kill any of them for real (`SIGKILL`: no finalizer, no goodbye to the database).
 */
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { freePort } from "./server.ts"
import { onStop } from "./services.ts"
import { until } from "./wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))

/** A launched loaders process. */
export interface LoadersProcess {
  readonly name: string
  readonly pid: number
  /** Its stdout and stderr so far, interleaved. */
  readonly output: () => string
  /** Resolves once it has exited, with its exit code (null when a signal ended it). */
  readonly exited: Promise<number | null>
  /** Whether it exited without being told to (kill or stop). */
  readonly crashed: () => boolean
  /** `kill -9`, resolved once the process is gone. */
  readonly kill: () => Promise<void>
  /** SIGTERM (finish or hand back the work in flight), resolved with the exit code. */
  readonly stop: () => Promise<number | null>
}

/** The webhook process: a `LoadersProcess` listening at `base`. */
export interface WebhookProcess extends LoadersProcess {
  readonly base: string
}

/** The test's environment without its own loaders settings, so a child sees only what it is given. */
const baseEnv = (): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("LOADERS_") && name !== "DATABASE_URL" && !name.startsWith("OTEL_")) {
      env[name] = value
    }
  }
  return env
}

const launch = (name: string, args: ReadonlyArray<string>, env: Record<string, string>): LoadersProcess => {
  let output = ""
  const child: ChildProcess = spawn(process.execPath, [...args], { cwd: ROOT, env: { ...baseEnv(), ...env }, stdio: ["ignore", "pipe", "pipe"] })
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)))
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  // A test that failed half-way leaves no process behind.
  onStop(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL")
      await exited
    }
  })
  let told = false
  let gone = false
  void exited.then(() => (gone = true))
  const signal = (which: NodeJS.Signals) => {
    told = true
    if (child.exitCode === null && child.signalCode === null) child.kill(which)
    return exited
  }
  return {
    name,
    pid: child.pid ?? -1,
    output: () => output,
    exited,
    crashed: () => gone && !told,
    kill: () => signal("SIGKILL").then(() => undefined),
    stop: () => signal("SIGTERM")
  }
}

/**
 * Starts processes of one deployment: every one gets `settings` (DATABASE_URL, the bucket, the
 * webhook secret, the lease and heartbeat…) on top of the machine's environment.
 */
export const processCluster = (settings: Record<string, string>) => {
  const started: Array<LoadersProcess> = []
  let workers = 0
  return {
    /**
     * Throws when a process exited on its own (a start-up failure, a crash): a test waiting for
     * work to be done then fails at once with that process's output instead of at its deadline.
     */
    assertAlive: () => {
      const crashed = started.find((p) => p.crashed())
      if (crashed) throw new Error(`${crashed.name} (pid ${crashed.pid}) exited on its own:\n${crashed.output()}`)
    },
    /** Every process started so far (dead ones included), for a failure message. */
    outputs: () => started.map((p) => `--- ${p.name} (pid ${p.pid}) ---\n${p.output()}`).join("\n"),
    /** `npm run serve -- --no-workers` on a free port, resolved once `/healthz` answers. */
    webhook: async (extra: Record<string, string> = {}): Promise<WebhookProcess> => {
      const port = await freePort()
      const proc = launch("webhook", ["src/entrypoints/serve.bun.ts", "--no-workers"], { ...settings, ...extra, PORT: String(port) })
      started.push(proc)
      const base = `http://127.0.0.1:${port}`
      let gone = false
      void proc.exited.then(() => (gone = true))
      await until(60_000, () => `the webhook did not answer /healthz:\n${proc.output()}`, async () => {
        if (gone) throw new Error(`the webhook exited before it answered:\n${proc.output()}`)
        return (await fetch(`${base}/healthz`).then((r) => r.ok, () => false)) ? true : undefined
      })
      return { ...proc, base }
    },
    /** `npm run worker`, resolved once it says it takes jobs. */
    worker: async (extra: Record<string, string> = {}): Promise<LoadersProcess> => {
      const proc = launch(`worker ${++workers}`, ["src/entrypoints/worker.ts"], { ...settings, ...extra })
      started.push(proc)
      let gone = false
      void proc.exited.then(() => (gone = true))
      await until(60_000, () => `worker did not start:\n${proc.output()}`, async () => {
        if (gone) throw new Error(`the worker exited at start:\n${proc.output()}`)
        return proc.output().includes("workers: taking delivery jobs") ? true : undefined
      })
      return proc
    },
    /** Stops (SIGTERM) every process still running and waits for each. */
    stopAll: () => Promise.all(started.map((p) => p.stop())).then(() => undefined)
  }
}

/** One `ProcessCluster`. */
export type ProcessCluster = ReturnType<typeof processCluster>
