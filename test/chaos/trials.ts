import postgres from "postgres"
import { startS3FaultProxy } from "../support/s3FaultProxy.ts"
import { type BatchExit, batchEnvironment, startBatch } from "./batch.ts"
import { folderOf } from "./deliveries.ts"
import { BucketWatch, type Step, type Timeline } from "./observe.ts"
import { compare, type Snapshot, takeSnapshot } from "./snapshot.ts"
import type { Target, World } from "./world.ts"

/** How one trial ended, against the clean run. */
export interface TrialResult {
  readonly kind: string
  readonly verdict: "identical" | "differs" | "stuck"
  /** Every difference from the clean run and every broken expectation (exit codes, bounds). */
  readonly differences: ReadonlyArray<string>
  /** Exit codes of the trial's batch processes, in order (`SIGKILL` for the one killed on purpose). */
  readonly exits: ReadonlyArray<string>
  readonly seconds: number
  /** What the kind of trial measures: step killed in, time to exit after a fault, stall detections. */
  readonly details: Readonly<Record<string, unknown>>
}

/** Bounds and settings every trial shares, fixed once the clean run is measured. */
export interface Plan {
  /** A batch process that has not ended after this long is stuck. */
  readonly runBoundMs: number
  /** `LOADERS_LEASE`: how long a killed run's claim blocks the next run. */
  readonly lease: string
  readonly leaseMs: number
  readonly reference: Snapshot
  /** When, in the clean run, each delivery's archive steps were first seen (ms since spawn). */
  readonly timelines: ReadonlyMap<string, Timeline>
  /** Milliseconds from spawn to the first archive object of the clean run. */
  readonly firstArchiveMs: number
}

/** What a trial's batch processes did, as it goes: their exits, their output, the expectations they broke. */
class Runs {
  readonly exits: Array<string> = []
  readonly all: Array<BatchExit> = []
  readonly outputs: Array<ReadonlyArray<string>> = []
  readonly problems: Array<string> = []

  add(exit: BatchExit, as = exitText(exit)): BatchExit {
    this.exits.push(as)
    this.all.push(exit)
    // Everything it said (bounded), for whoever has to explain a difference from the JSON.
    this.outputs.push(exit.lines.slice(-400).map((l) => l.text.slice(0, 1000)))
    const crash = crashOf(exit)
    if (crash !== undefined) this.problems.push(`a run crashed (${as}) instead of failing with a clear error: ${crash}`)
    return exit
  }
}

/**
 * The uncaught error a process died of, when it did: Bun ends its report of an uncaught exception
 * with its version banner (`Bun v1.4.5 (Linux x64)`), which no handled failure prints.
 */
const crashOf = (exit: BatchExit): string | undefined => {
  const banner = exit.lines.findIndex((l) => /^Bun v\d+\.\d+\.\d+ \(/.test(l.text))
  if (banner < 0) return undefined
  const error = exit.lines.slice(0, banner).findLast((l) => /\b\w*Error\b/.test(l.text))
  return (error?.text ?? exit.lines[banner]!.text).trim()
}

const exitText = (exit: BatchExit): string =>
  exit.stuck ? `stuck after ${exit.seconds.toFixed(1)} s` : exit.code === null ? String(exit.signal) : String(exit.code)

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(ms, 0)))

/** Runs of `batch` a recovery may take: the next run must finish what a fault left; one more in case it raced a lease. */
const RECOVERY_RUNS = 3

/**
 * Runs `batch` until no work is left, at most `RECOVERY_RUNS` times: what a fault left must be
 * taken over by the next run once the dead run's claim has run out, not after some later timeout
 * (a folder left without its manifest, say, waiting for the quiet period). Work left is an object
 * under incoming/ or a delivery the ledger has not marked archived: a run that gave up after its
 * sources were deleted (S3 faults past its retries while sweeping its staging) leaves only the
 * ledger's mark, which the next scheduled run sets. After a fault the next run always happens
 * (`afterFault`), as an operator's would. Without faults (`faulty` false) every run must exit 0.
 * `unfinished` leaves the rest to the comparison.
 */
export const recover = async (
  world: World,
  target: Target,
  plan: Plan,
  runs: Runs,
  options: { readonly afterFault: boolean; readonly faulty?: boolean; readonly env?: Record<string, string> }
): Promise<"done" | "unfinished" | "stuck"> => {
  const env = options.env ?? batchEnvironment(world.settings(target, plan.lease))
  const empty = async () =>
    (await world.keys(target.bucket, "incoming/")).length === 0 && (await unarchivedFolders(target)).size === 0
  for (let attempt = 1; attempt <= RECOVERY_RUNS; attempt++) {
    if (!(attempt === 1 && options.afterFault) && (await empty())) return "done"
    if (attempt > 1) await sleep(1_000)
    const run = runs.add(await startBatch(env, plan.runBoundMs).exited)
    if (run.stuck) return "stuck"
    if (run.code !== 0 && !options.faulty) runs.problems.push(`a run without faults exited ${exitText(run)}: ${lastLines(run)}`)
  }
  return (await empty()) ? "done" : "unfinished"
}

/** The last lines a process printed, for a difference's explanation. */
export const lastLines = (exit: BatchExit, count = 3): string =>
  exit.lines.slice(-count).map((l) => l.text.slice(0, 300)).join(" | ")

/** Compares the trial's end state with the clean run, then frees its database and bucket. */
export const conclude = async (
  world: World,
  target: Target,
  plan: Plan,
  kind: string,
  started: number,
  outcome: "done" | "unfinished" | "stuck",
  runs: Runs,
  details: Readonly<Record<string, unknown>>
): Promise<TrialResult> => {
  const snapshot = await takeSnapshot(target.databaseUrl, world.client, target.bucket, world.deliveries)
  const differences = [...runs.problems, ...compare(plan.reference, snapshot)]
  await world.dispose(target)
  return {
    kind,
    verdict: outcome === "stuck" ? "stuck" : differences.length === 0 ? "identical" : "differs",
    differences,
    exits: runs.exits,
    seconds: (performance.now() - started) / 1000,
    details: { ...details, ledgerRuns: snapshot.runs, outputs: runs.outputs }
  }
}

/** Where a kill is aimed: a random moment of the whole run, or a moment inside one delivery's archive step. */
export type KillAim =
  | { readonly _tag: "anywhere"; readonly atMs: number }
  | { readonly _tag: "archive"; readonly folder: string; readonly step: "copy" | "report" | "delete"; readonly delayMs: number }

/**
 * kill -9 of a batch process at the aimed moment, then batch again until no work is left. The
 * step the kill fell in is judged from the bucket at the moment of the kill.
 */
export const killTrial = async (world: World, plan: Plan, aim: KillAim): Promise<TrialResult> => {
  const started = performance.now()
  const target = await world.target()
  const runs = new Runs()
  const batch = startBatch(batchEnvironment(world.settings(target, plan.lease)), plan.runBoundMs)
  const watch = new BucketWatch(world.client, target.bucket, world.deliveries, batch.startedAt)
  if (aim._tag === "anywhere") {
    await watch.until(() => !batch.running() || performance.now() - batch.startedAt >= aim.atMs, plan.runBoundMs)
  } else {
    const seen = (w: BucketWatch) => {
      const timeline = w.timelines.get(aim.folder)
      return timeline?.[aim.step] !== undefined
    }
    await watch.until((w) => !batch.running() || seen(w), plan.runBoundMs)
    const deadline = performance.now() + aim.delayMs
    await watch.until(() => !batch.running() || performance.now() >= deadline, plan.runBoundMs)
  }
  const killed = batch.running()
  batch.kill()
  const first = await batch.exited
  await watch.stop()
  // Once the process is dead the bucket no longer moves: what it holds now is where the kill fell.
  await watch.look()
  const archived = await archivedFolders(target)
  const step: Step | "ended before the kill" = killed ? watch.step(archived) : "ended before the kill"
  const views = Object.fromEntries(watch.current)
  runs.add(first, killed ? "SIGKILL" : exitText(first))
  const details = { aim, step, killedAtMs: Math.round(first.seconds * 1000), views, archivedInLedger: [...archived] }
  if (first.stuck) return conclude(world, target, plan, "kill", started, "stuck", runs, details)
  // The killed run renewed its claim at the latest when it died: a run started before the claim
  // runs out would only find the delivery busy (the recovery below retries anyway, this only
  // saves those runs).
  await sleep(plan.leaseMs)
  return conclude(world, target, plan, "kill", started, await recover(world, target, plan, runs, { afterFault: true }), runs, details)
}

/** The deliveries the ledger records as moved to their archive, or not (none before the ledger exists). */
const ledgerFolders = async (target: Target, archived: boolean): Promise<ReadonlySet<string>> => {
  const sql = postgres(target.databaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 10 })
  const rows = await sql<Array<{ folder: string }>>`
    SELECT partner || '/' || delivery AS folder FROM loaders.deliveries WHERE archived = ${archived}`.catch(() => [])
  await sql.end({ timeout: 5 })
  return new Set(rows.map((r) => r.folder))
}
const archivedFolders = (target: Target) => ledgerFolders(target, true)
const unarchivedFolders = (target: Target) => ledgerFolders(target, false)

/** Waits for a `COPY` of the trial's database in pg_stat_activity; its backend pids, or none within the bound. */
const copyingBackends = async (world: World, target: Target, boundMs: number, running: () => boolean) => {
  const database = new URL(target.databaseUrl).pathname.slice(1)
  const admin = world.admin(target.cluster)
  try {
    const deadline = performance.now() + boundMs
    while (performance.now() < deadline && running()) {
      const rows = await admin<Array<{ pid: number }>>`
        SELECT pid FROM pg_stat_activity
        WHERE datname = ${database} AND state = 'active' AND query ILIKE 'COPY%' AND pid <> pg_backend_pid()`
      if (rows.length > 0) return rows.map((r) => r.pid)
      await sleep(20)
    }
    return []
  } finally {
    await admin.end({ timeout: 5 })
  }
}

/** The bound within which a run whose database went away must have exited 1. */
const LOST_DATABASE_BOUND_MS = 30_000
const SERVER_DOWN_MS = 10_000

/**
 * The database lost mid-COPY: the loading backend terminated (`pg_terminate_backend`), or the
 * whole server stopped (`pg_ctl stop -m fast`) for 10 s. The run must exit 1 within 30 s of the
 * fault; then batch again, without faults, must end identical to the clean run.
 */
export const databaseTrial = async (world: World, plan: Plan, fault: "terminate" | "stop"): Promise<TrialResult> => {
  const kind = fault === "terminate" ? "pg_terminate_backend mid-COPY" : "PostgreSQL stopped 10 s mid-COPY"
  const started = performance.now()
  const target = await world.target({ stopsServer: fault === "stop" })
  const runs = new Runs()
  const batch = startBatch(batchEnvironment(world.settings(target, plan.lease)), plan.runBoundMs + LOST_DATABASE_BOUND_MS)
  const pids = await copyingBackends(world, target, plan.runBoundMs, batch.running)
  let faultAt: number | undefined
  let restart: Promise<void> = Promise.resolve()
  if (pids.length > 0 && batch.running()) {
    faultAt = performance.now()
    if (fault === "terminate") {
      const admin = world.admin(target.cluster)
      // One loading connection: the run's other work, if any, goes on.
      await admin`SELECT pg_terminate_backend(${pids[0]!})`.finally(() => admin.end({ timeout: 5 }))
    } else {
      await target.cluster.stop("fast")
      restart = sleep(SERVER_DOWN_MS).then(() => target.cluster.start())
    }
  } else {
    runs.problems.push("no COPY seen in pg_stat_activity before the run ended: no fault injected")
  }
  // The run is stuck if it has not ended within the bound after the fault.
  const bound = faultAt === undefined ? undefined : setTimeout(batch.kill, LOST_DATABASE_BOUND_MS)
  const first = runs.add(await batch.exited)
  clearTimeout(bound)
  const exitedAfterMs = faultAt === undefined ? undefined : performance.now() - faultAt
  await restart
  const stuck = first.stuck || (faultAt !== undefined && first.code === null)
  if (!stuck && faultAt !== undefined && first.code !== 1) {
    runs.problems.push(`the run whose database went away exited ${exitText(first)}, expected 1: ${lastLines(first)}`)
  }
  const details = { exitedAfterMs }
  if (stuck) runs.problems.push(`the run did not end within ${LOST_DATABASE_BOUND_MS / 1000} s of the fault: killed`)
  // A run that lost its database may not have been able to give its claims back: they run out
  // one lease after it ended, and then the next run must take the deliveries over.
  await sleep(first.startedAt + first.seconds * 1000 + plan.leaseMs - performance.now())
  const outcome = await recover(world, target, plan, runs, { afterFault: true })
  return conclude(world, target, plan, kind, started, stuck ? "stuck" : outcome, runs, details)
}

/** Two batch processes started together on the same deliveries: each delivery loaded once. */
export const pairTrial = async (world: World, plan: Plan): Promise<TrialResult> => {
  const started = performance.now()
  const target = await world.target()
  const env = batchEnvironment(world.settings(target, plan.lease))
  const runs = new Runs()
  const pair = await Promise.all([startBatch(env, plan.runBoundMs), startBatch(env, plan.runBoundMs)].map((b) => b.exited))
  for (const exit of pair) {
    runs.add(exit)
    if (!exit.stuck && exit.code !== 0) runs.problems.push(`a run exited ${exitText(exit)}: ${lastLines(exit)}`)
  }
  const outcome = pair.some((r) => r.stuck) ? "stuck" : await recover(world, target, plan, runs, { afterFault: false })
  return conclude(world, target, plan, "two batch processes at once", started, outcome, runs, {})
}

/** `LOADERS_S3_TIMEOUT` in the S3 trials: a stall must be noticed this long after the bytes stop. */
export const S3_TIMEOUT_MS = 3_000
/**
 * How late after its bound a stall may be noticed: the reader first drains what was buffered
 * before the stall (socket and stream buffers, a few MB), and the machine is shared.
 */
export const S3_SLACK_MS = 3_000

/**
 * Every S3 call of the loader through a fault proxy: 10% answered 500/503, 10% cut mid-body, 2%
 * stalled mid-body (headers and part of the body, then silence with the socket open). Batch runs
 * through the proxy until no work is left (a run may give a delivery up after its retries; it
 * runs again); the end state must be the clean run's. Each stall, timed where the proxy makes it,
 * is matched with the next "no progress" line of the loader's log: that delay is its detection time.
 */
export const s3Trial = async (world: World, plan: Plan, seed: number): Promise<TrialResult> => {
  const started = performance.now()
  const target = await world.target()
  const proxy = await startS3FaultProxy(world.s3.endpoint, { error: 0.1, cut: 0.1, stall: 0.02, seed, honourIfMatch: true })
  const stalls: Array<number> = []
  let seen = 0
  // The proxy counts its faults; watching the count gives each stall's time to within a few ms.
  const stallWatch = setInterval(() => {
    for (; seen < proxy.stats.stalls; seen++) stalls.push(performance.now())
  }, 5)
  const runs = new Runs()
  const detections: Array<number> = []
  const env = batchEnvironment({ ...world.settings(target, plan.lease, proxy.endpoint), LOADERS_S3_TIMEOUT: `${S3_TIMEOUT_MS} millis` })
  const outcome = await recover(world, target, plan, runs, { afterFault: true, faulty: true, env }).finally(() => {
    clearInterval(stallWatch)
    return proxy.close()
  })
  for (const exit of runs.all) {
    for (const line of exit.lines) if (/no progress for/i.test(line.text)) detections.push(exit.startedAt + line.at)
  }
  // Each "no progress" line answers the latest stall that began at least the bound before it (the
  // watchdog cannot fire sooner). A stall no line answers was on a response the loader no longer
  // waited for (it had read what it needed, or gave the call up for another fault): not a hang.
  const open = [...stalls]
  const detected: Array<number> = []
  let unexplained = 0
  for (const at of detections.sort((a, b) => a - b)) {
    const index = open.findLastIndex((start) => start <= at - S3_TIMEOUT_MS + 100)
    if (index < 0) {
      unexplained++
      continue
    }
    detected.push(at - open[index]!)
    open.splice(index, 1)
  }
  for (const ms of detected) {
    if (ms > S3_TIMEOUT_MS + S3_SLACK_MS) runs.problems.push(`a stall was noticed after ${(ms / 1000).toFixed(1)} s, bound ${S3_TIMEOUT_MS / 1000} s`)
  }
  return conclude(world, target, plan, "S3 faults (10% 5xx, 10% cut, 2% stalled)", started, outcome, runs, {
    seed,
    requests: proxy.stats.requests,
    errors: proxy.stats.errors,
    cuts: proxy.stats.cuts,
    stalls: proxy.stats.stalls,
    detectionMs: detected.map(Math.round),
    stallsNotWaitedOn: open.length,
    // Bounds reached without a stall of the proxy's (s3rver itself slow on a busy machine).
    otherTimeouts: unexplained
  })
}

/** The clean run: one batch on fresh deliveries, watched, its end state taken as the reference. */
export const cleanRun = async (world: World, boundMs: number, lease: string) => {
  const target = await world.target()
  const batch = startBatch(batchEnvironment(world.settings(target, lease)), boundMs)
  const watch = new BucketWatch(world.client, target.bucket, world.deliveries, batch.startedAt)
  const exit = await batch.exited
  await watch.stop()
  const snapshot = await takeSnapshot(target.databaseUrl, world.client, target.bucket, world.deliveries)
  await world.dispose(target)
  const copies = world.deliveries.map((d) => watch.timelines.get(folderOf(d))?.copy).filter((t) => t !== undefined)
  return { exit, snapshot, timelines: watch.timelines, firstArchiveMs: Math.min(...copies) }
}
