/**
 * The fault harness (`npm run chaos`): drives the real `batch` command as child processes against
 * its own PostgreSQL cluster and s3rver, faults it — kill -9 at random moments and inside the
 * archive step, S3 errors/cuts/stalls through a proxy, the database backend terminated or the
 * server stopped mid-COPY, two processes at once — and compares every trial's end state with a
 * clean run's: row checksums per table, the archive byte for byte, the ledger's final states.
 * Prints a table of trials (identical / differs / stuck), writes the details as JSON under
 * test/artifacts/, and exits 1 when any trial differs or is stuck.
 *
 *   npm run chaos -- [--quick] [--mb 100] [--kills 20] [--db-trials 5] [--s3-trials 3] [--pair-trials 3] [--seed N] [--jobs 1]
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { parseArgs } from "node:util"
import { generator } from "../support/s3FaultProxy.ts"
import { onStop, stopAll } from "../support/services.ts"
import { killAll } from "./batch.ts"
import { chaosDeliveries, folderOf } from "./deliveries.ts"
import { checkReference } from "./snapshot.ts"
import {
  cleanRun,
  databaseTrial,
  type KillAim,
  killTrial,
  pairTrial,
  type Plan,
  S3_SLACK_MS,
  S3_TIMEOUT_MS,
  s3Trial,
  type TrialResult
} from "./trials.ts"
import { World } from "./world.ts"

const USAGE = `Usage: npm run chaos -- [options]

  --quick             a short run for CI: small delivery, a few trials of each kind
  --mb <n>            size of the generated deliveries in MB (default 100; --quick: 3)
  --kills <n>         kill -9 trials, a third of them (at least 5 when n >= 15) inside the archive step (default 20; --quick: 2)
  --db-trials <n>     trials of each database fault (default 5; --quick: 1)
  --s3-trials <n>     trials through the S3 fault proxy (default 3; --quick: 1)
  --pair-trials <n>   trials of two batch processes at once (default 3; --quick: 1)
  --seed <n>          seed of the kill moments and S3 faults (default: random, printed)
  --jobs <n>          trials run side by side, each on its own database and bucket (default 1; --quick: 2);
                      the server-stop trials run one at a time, on a cluster of their own
  -h, --help          this help`

const parse = () =>
  parseArgs({
    options: {
      quick: { type: "boolean", default: false },
      mb: { type: "string" },
      kills: { type: "string" },
      "db-trials": { type: "string" },
      "s3-trials": { type: "string" },
      "pair-trials": { type: "string" },
      seed: { type: "string" },
      jobs: { type: "string" },
      help: { type: "boolean", short: "h", default: false }
    }
  })
let values: ReturnType<typeof parse>["values"]
try {
  values = parse().values
} catch (error) {
  console.error(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
  process.exit(2)
}
if (values.help) {
  console.log(USAGE)
  process.exit(0)
}
const count = (value: string | undefined, full: number, quick: number, name: string): number => {
  const n = value === undefined ? (values.quick ? quick : full) : Number(value)
  if (!Number.isSafeInteger(n) || n < 0) {
    console.error(`--${name} expects a whole number, 0 or more, got "${value}"\n\n${USAGE}`)
    process.exit(2)
  }
  return n
}
const megabytes = count(values.mb, 100, 3, "mb")
const kills = count(values.kills, 20, 2, "kills")
const dbTrials = count(values["db-trials"], 5, 1, "db-trials")
const s3Trials = count(values["s3-trials"], 3, 1, "s3-trials")
const pairTrials = count(values["pair-trials"], 3, 1, "pair-trials")
const jobs = Math.max(1, count(values.jobs, 1, 2, "jobs"))
const seed = count(values.seed, Math.floor(Math.random() * 2 ** 31), Math.floor(Math.random() * 2 ** 31), "seed")

/** Seeded, so a seed replays the same kill moments and S3 faults. */
const random = generator(seed)

// Long enough that a busy machine's renewals (every third of it) stay in time; short enough that a
// killed run's delivery is taken over within seconds.
const LEASE = values.quick ? "3 seconds" : "8 seconds"
const LEASE_MS = values.quick ? 3_000 : 8_000

const log = (line: string) => console.log(line)

const main = async (): Promise<number> => {
  const work = mkdtempSync(join(tmpdir(), "loaders-chaos-"))
  onStop(async () => rmSync(work, { recursive: true, force: true }))
  log(`Generating (or reusing) ${megabytes} MB of deliveries; seed ${seed}`)
  const deliveries = await chaosDeliveries(megabytes)
  const world = await World.start(deliveries, work)
  log(`Clean run (reference)…`)
  const clean = await cleanRun(world, 600_000, LEASE)
  const cleanProblems = [
    ...(clean.exit.code === 0 ? [] : [`the clean run exited ${clean.exit.code ?? clean.exit.signal}`]),
    ...checkReference(clean.snapshot, deliveries)
  ]
  log(`  ${clean.exit.seconds.toFixed(1)} s, first archive object at ${(clean.firstArchiveMs / 1000).toFixed(1)} s`)
  if (cleanProblems.length > 0) {
    console.error(`The clean run is not what the deliveries should give; nothing to compare with:\n  ${cleanProblems.join("\n  ")}`)
    console.error(clean.exit.lines.map((l) => l.text).join("\n"))
    return 1
  }
  const plan: Plan = {
    runBoundMs: Math.max(60_000, clean.exit.seconds * 1000 * 5),
    lease: LEASE,
    leaseMs: LEASE_MS,
    reference: clean.snapshot,
    timelines: clean.timelines,
    firstArchiveMs: clean.firstArchiveMs
  }
  const results: Array<TrialResult> = []
  const record = (result: TrialResult) => {
    results.push(result)
    const extra = result.kind === "kill" ? ` (${String(result.details.step)})` : ""
    log(`  ${result.kind}${extra}: ${result.verdict} in ${result.seconds.toFixed(1)} s, exits ${result.exits.join(", ")}`)
    for (const difference of result.differences.slice(0, 8)) log(`    ${difference.length > 400 ? `${difference.slice(0, 400)}…` : difference}`)
  }

  // Every trial has its own database and bucket, so they may run side by side; the trials that
  // stop the server share a cluster of their own, so only one of them runs at a time. They are
  // queued first: they spend most of their time waiting.
  const queue: Array<{ readonly stopsServer: boolean; readonly run: () => Promise<TrialResult> }> = [
    ...Array.from({ length: dbTrials }, () => ({ stopsServer: true, run: () => databaseTrial(world, plan, "stop") })),
    ...killAims(kills, plan, deliveries.map(folderOf)).map((aim) => ({ stopsServer: false, run: () => killTrial(world, plan, aim) })),
    ...Array.from({ length: dbTrials }, () => ({ stopsServer: false, run: () => databaseTrial(world, plan, "terminate") })),
    ...Array.from({ length: pairTrials }, () => ({ stopsServer: false, run: () => pairTrial(world, plan) })),
    ...Array.from({ length: s3Trials }, () => Math.floor(random() * 2 ** 31)).map((s3Seed) => ({
      stopsServer: false,
      run: () => s3Trial(world, plan, s3Seed)
    }))
  ]
  let stopping = false
  // A failure of the harness itself (s3rver or PostgreSQL gone, say) is no verdict on the loader:
  // it stops the trials, and what was done so far is still tabled and written.
  const harnessErrors: Array<string> = []
  const lane = async () => {
    while (harnessErrors.length === 0) {
      const index = queue.findIndex((t) => !t.stopsServer || !stopping)
      const trial = index < 0 ? undefined : queue.splice(index, 1)[0]
      if (!trial) return
      stopping ||= trial.stopsServer
      await trial.run().then(record, (error: unknown) => {
        harnessErrors.push(error instanceof Error ? error.message : String(error))
        console.error(`The harness failed (not the loader): ${harnessErrors.at(-1)}`)
      })
      if (trial.stopsServer) stopping = false
    }
  }
  await Promise.all(Array.from({ length: jobs }, lane))

  const leftovers = world.leftovers()
  log("")
  log(table(results, leftovers))
  if (harnessErrors.length > 0) log(`Stopped early, ${queue.length} trials not run: the harness failed (${harnessErrors.join("; ")}).`)
  const out = join(fileURLToPath(new URL("../artifacts/", import.meta.url)))
  mkdirSync(out, { recursive: true })
  const file = join(out, "chaos.json")
  writeFileSync(
    file,
    JSON.stringify({ megabytes, seed, jobs, lease: LEASE, runBoundMs: plan.runBoundMs, clean: { seconds: clean.exit.seconds, timelines: Object.fromEntries(clean.timelines) }, results, leftovers, harnessErrors }, null, 2)
  )
  log(`Details: ${file}`)
  return harnessErrors.length === 0 && results.every((r) => r.verdict === "identical") && leftovers.length === 0 ? 0 : 1
}

/**
 * Kill moments: two thirds anywhere in the run (uniform over the clean run's time to its first
 * archive object), one third inside a large delivery's archive step, cycling through its copy,
 * its report and the deletion of its sources, at a random delay inside that step as the clean run
 * timed it.
 */
const killAims = (n: number, plan: Plan, folders: ReadonlyArray<string>): Array<KillAim> => {
  const inArchive = n >= 15 ? Math.max(5, Math.ceil(n / 3)) : Math.ceil(n / 3)
  const large = folders.slice(0, 2)
  const steps = ["copy", "report", "delete"] as const
  const archiveAt = new Set(Array.from({ length: inArchive }, (_, j) => Math.floor(((j + 0.5) * n) / inArchive)))
  const aims: Array<KillAim> = []
  for (let i = 0; i < n; i++) {
    if (archiveAt.has(i)) {
      const k = aims.filter((a) => a._tag === "archive").length
      const folder = large[k % large.length]!
      const step = steps[k % steps.length]!
      const timeline = plan.timelines.get(folder) ?? {}
      const next = { copy: timeline.report, report: timeline.delete, delete: timeline.done }[step]
      const window = Math.max((next ?? 0) - (timeline[step] ?? 0), 30)
      aims.push({ _tag: "archive", folder, step, delayMs: Math.round(random() * window) })
    } else {
      aims.push({ _tag: "anywhere", atMs: Math.round(random() * plan.firstArchiveMs) })
    }
  }
  return aims
}

const range = (numbers: ReadonlyArray<number>, unit: string) =>
  numbers.length === 0 ? "" : `${Math.min(...numbers).toFixed(1)}–${Math.max(...numbers).toFixed(1)} ${unit}`

/** The summary table: one line per kind of trial, then the leftovers. */
const table = (results: ReadonlyArray<TrialResult>, leftovers: ReadonlyArray<string>): string => {
  // The issue's order: kills, S3, database, two processes.
  const order = ["kill", "S3", "pg_terminate", "PostgreSQL", "two"]
  const rank = (kind: string) => order.findIndex((prefix) => kind.startsWith(prefix))
  const kinds = [...new Set(results.map((r) => r.kind))].sort((a, b) => rank(a) - rank(b))
  const rows = kinds.map((kind) => {
    const mine = results.filter((r) => r.kind === kind)
    const n = (verdict: TrialResult["verdict"]) => mine.filter((r) => r.verdict === verdict).length
    let notes = ""
    if (kind === "kill") {
      const steps = new Map<string, number>()
      for (const r of mine) steps.set(String(r.details.step), (steps.get(String(r.details.step)) ?? 0) + 1)
      const inside = mine.filter((r) => String(r.details.step).startsWith("archive")).length
      notes = `${inside} inside the archive step; killed in: ${[...steps].map(([s, c]) => `${s} ${c}`).join(", ")}`
    } else if (kind.startsWith("pg_terminate") || kind.startsWith("PostgreSQL")) {
      const times = mine.map((r) => r.details.exitedAfterMs).filter((t): t is number => typeof t === "number").map((t) => t / 1000)
      const firstExits = mine.map((r) => r.exits[0] ?? "?")
      notes = `first run exit ${[...new Set(firstExits)].join("/")} ${range(times, "s after the fault")}`
    } else if (kind.startsWith("S3")) {
      const detections = mine.flatMap((r) => (r.details.detectionMs as ReadonlyArray<number> | undefined) ?? []).map((ms) => ms / 1000)
      const sum = (key: string) => mine.reduce((total, r) => total + Number(r.details[key] ?? 0), 0)
      notes = `${sum("requests")} requests: ${sum("errors")} 5xx, ${sum("cuts")} cut, ${sum("stalls")} stalled; ` +
        `${detections.length} stalls noticed ${range(detections, "s after they began")} (bound ${S3_TIMEOUT_MS / 1000} s + ${S3_SLACK_MS / 1000} s slack), ` +
        `${sum("stallsNotWaitedOn")} on responses no longer waited for; ` +
        `exits ${[...new Set(mine.flatMap((r) => r.exits))].join("/")}`
    } else {
      notes = `exits ${[...new Set(mine.flatMap((r) => r.exits))].join("/")}`
    }
    return `| ${kind} | ${mine.length} | ${n("identical")} | ${n("differs")} | ${n("stuck")} | ${notes} |`
  })
  const running = results.flatMap((r) => r.differences.filter((d) => d.startsWith("ledger run left running")))
  return [
    "| trial | trials | identical | differs | stuck | notes |",
    "| --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
    `Runs left 'running' in the ledger: ${running.length}. Temp leftovers (loaders-errors-*): ${leftovers.length}.`
  ].join("\n")
}

// Interrupted (Ctrl-C, a CI timeout): no batch process, PostgreSQL or s3rver may outlive the harness.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.once(signal, () => {
    killAll()
    void stopAll().finally(() => process.exit(130))
  })
}

let status = 1
try {
  status = await main()
} catch (error) {
  console.error(error)
} finally {
  killAll()
  await stopAll()
}
process.exit(status)
