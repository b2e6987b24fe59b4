import { spawn } from "node:child_process"
import { join } from "node:path"
import { fileURLToPath } from "node:url"

const ROOT = fileURLToPath(new URL("../..", import.meta.url))

/** How a `batch` process ended. */
export interface BatchExit {
  /** Exit code, null when killed by a signal. */
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** `performance.now()` at spawn. */
  readonly startedAt: number
  /** Seconds from spawn to exit. */
  readonly seconds: number
  /** It did not end within its bound and was killed. */
  readonly stuck: boolean
  /** Every line it printed (stdout and stderr), each with the milliseconds since spawn it arrived at. */
  readonly lines: ReadonlyArray<{ readonly at: number; readonly text: string }>
}

/** A running `batch` process. */
export interface BatchProcess {
  readonly startedAt: number
  /** Resolves when it ends, or once its bound passed and it was killed (`stuck`). */
  readonly exited: Promise<BatchExit>
  /** SIGKILL now: the process and whatever it started. */
  readonly kill: () => void
  readonly running: () => boolean
}

/** Processes started and not yet ended, so an interrupted harness leaves none behind. */
const running = new Set<BatchProcess>()

/** SIGKILLs every batch process still running (the harness is being interrupted). */
export const killAll = (): void => {
  for (const batch of running) batch.kill()
}

/**
 * Starts the real `batch` entry point (`bun src/entrypoints/batch.ts`) as a child process in its
 * own process group, configured only by `env`, and kills it (group and all) if it runs past
 * `boundMs`: the harness sees the loader from outside, as an operator's scheduler would.
 */
export const startBatch = (env: Readonly<Record<string, string>>, boundMs: number, args: ReadonlyArray<string> = []): BatchProcess => {
  const startedAt = performance.now()
  const child = spawn(join(ROOT, "node_modules/.bin/bun"), [join(ROOT, "src/entrypoints/batch.ts"), ...args], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ["ignore", "pipe", "pipe"]
  })
  const lines: Array<{ at: number; text: string }> = []
  const collect = (stream: NodeJS.ReadableStream | null) => {
    let pending = ""
    stream?.on("data", (chunk: Buffer) => {
      const at = performance.now() - startedAt
      const parts = (pending + chunk.toString()).split("\n")
      pending = parts.pop() ?? ""
      for (const text of parts) lines.push({ at, text })
    })
    stream?.on("end", () => {
      if (pending) lines.push({ at: performance.now() - startedAt, text: pending })
    })
  }
  collect(child.stdout)
  collect(child.stderr)
  let ended = false
  let stuck = false
  const kill = () => {
    if (ended || child.pid === undefined) return
    try {
      process.kill(-child.pid, "SIGKILL")
    } catch {
      // Already gone.
    }
  }
  const timer = setTimeout(() => {
    stuck = true
    kill()
  }, boundMs)
  const exited = new Promise<BatchExit>((resolve) => {
    child.once("close", (code, signal) => {
      ended = true
      running.delete(batch)
      clearTimeout(timer)
      resolve({ code, signal, startedAt, seconds: (performance.now() - startedAt) / 1000, stuck, lines })
    })
  })
  const batch: BatchProcess = { startedAt, exited, kill, running: () => !ended }
  running.add(batch)
  return batch
}

/** The environment a trial's `batch` runs with: nothing inherited that could point it elsewhere. */
export const batchEnvironment = (settings: Readonly<Record<string, string>>): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined || /^(LOADERS_|OTEL_|AWS_|DATABASE_URL$|RESEND_)/.test(name)) continue
    env[name] = value
  }
  return { ...env, OTEL_SDK_DISABLED: "true", ...settings }
}
