import { type ChildProcess, execFile, spawn } from "node:child_process"
import { mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "./server.ts"
import { onStop } from "./services.ts"
import { until } from "./wait.ts"

/** Debian's Prometheus and promtool (`apt-get install prometheus`; `.ci/run` installs it when missing). */
export const PROMETHEUS = "/usr/bin/prometheus"
export const PROMTOOL = "/usr/bin/promtool"

/** A process for Prometheus to scrape: its address (`127.0.0.1:port`) and the bearer token it wants. */
export interface Target {
  readonly address: string
  readonly token?: string
}

/** One series of a query's answer: its labels and its value at the query's time. */
export interface Sample {
  readonly metric: Record<string, string>
  readonly value: number
}

/** An alert as `/api/v1/alerts` lists it. */
export interface Alert {
  readonly labels: Record<string, string>
  readonly annotations: Record<string, string>
  readonly state: "pending" | "firing"
  readonly activeAt: string
}

interface ApiAnswer<A> {
  readonly status: "success" | "error"
  readonly data: A
  readonly error?: string
  readonly errorType?: string
}

/** Runs promtool with `args` from `cwd`; answers its exit code and output. */
export const promtool = (args: ReadonlyArray<string>, cwd: string) =>
  new Promise<{ code: number; output: string }>((resolve) => {
    execFile(PROMTOOL, [...args], { cwd, timeout: 60_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? (typeof error.code === "number" ? error.code : 1) : 0, output: `${stdout}${stderr}` }))
  })

/**
 * A real Prometheus in a temp dir, on a free loopback port, scraping `targets` every second (their
 * `/metrics`, with their bearer tokens) and evaluating `rules` (rule files' text) every second.
 * Waits until it is ready; stopped at the end of the run.
 */
export const startPrometheus = async (targets: ReadonlyArray<Target>, rules: ReadonlyArray<string> = []) => {
  const dir = mkdtempSync(join(tmpdir(), "loaders-prometheus-"))
  const ruleFiles = rules.map((text, i) => {
    const path = join(dir, `rules-${i}.yaml`)
    writeFileSync(path, text)
    return path
  })
  // JSON is YAML: no YAML writer needed.
  const config = {
    global: { scrape_interval: "1s", scrape_timeout: "900ms", evaluation_interval: "1s" },
    rule_files: ruleFiles,
    scrape_configs: targets.map((target, i) => ({
      job_name: `loaders-${i}`,
      static_configs: [{ targets: [target.address] }],
      ...(target.token ? { authorization: { type: "Bearer", credentials: target.token } } : {})
    }))
  }
  writeFileSync(join(dir, "prometheus.yaml"), JSON.stringify(config, null, 2))
  const port = await freePort()
  let output = ""
  const child: ChildProcess = spawn(PROMETHEUS, [
    `--config.file=${join(dir, "prometheus.yaml")}`,
    `--storage.tsdb.path=${join(dir, "data")}`,
    `--web.listen-address=127.0.0.1:${port}`,
    "--log.level=warn"
  ], { stdio: ["ignore", "pipe", "pipe"] })
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGKILL")
      await exited
    }
    rmSync(dir, { recursive: true, force: true })
  }
  onStop(stop)
  const base = `http://127.0.0.1:${port}`
  await until(30_000, () => `Prometheus did not get ready:\n${output}`, async () => {
    if (child.exitCode !== null) throw new Error(`Prometheus exited (${child.exitCode}):\n${output}`)
    return (await fetch(`${base}/-/ready`).then((r) => r.ok, () => false)) ? true : undefined
  })

  const api = async <A>(path: string, params: Record<string, string> = {}): Promise<ApiAnswer<A>> => {
    const response = await fetch(`${base}/api/v1/${path}?${new URLSearchParams(params)}`, { signal: AbortSignal.timeout(10_000) })
    return (await response.json()) as ApiAnswer<A>
  }

  return {
    base,
    output: () => output,
    /** An instant query's samples; throws naming the query when Prometheus refuses it. */
    samples: async (expr: string): Promise<Array<Sample>> => {
      const answer = await api<{ resultType: string; result: ReadonlyArray<{ metric: Record<string, string>; value: [number, string] }> }>(
        "query",
        { query: expr }
      )
      if (answer.status !== "success") throw new Error(`${expr}: ${answer.errorType}: ${answer.error}`)
      if (answer.data.resultType !== "vector") return []
      return answer.data.result.map(({ metric, value }) => ({ metric, value: Number(value[1]) }))
    },
    /** The alerts pending or firing now. */
    alerts: async (): Promise<Array<Alert>> => (await api<{ alerts: Array<Alert> }>("alerts")).data.alerts,
    /** Every rule group loaded, with each rule's health and last error. */
    rules: async () =>
      (await api<{ groups: Array<{ name: string; rules: Array<{ name: string; query: string; health: string; lastError?: string; type: string }> }> }>("rules")).data
        .groups,
    /** Each scrape target's health and last error. */
    targets: async () =>
      (await api<{ activeTargets: Array<{ scrapeUrl: string; health: string; lastError: string }> }>("targets")).data.activeTargets,
    stop
  }
}
