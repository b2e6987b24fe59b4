/**
 * Runs every command the README shows, in order, as a new user would: in a fresh clone of this
 * repository's HEAD, on a PATH with only /usr/bin and /bin (and Node with npm and npx, when they
 * live elsewhere) — so nothing from node_modules/.bin, no Bun, no Deno — without this shell's
 * LOADERS_*, DATABASE_URL, AWS_*, OTEL_* or RESEND_* variables. A command fails on a non-zero exit,
 * on outliving its bound, or when an expected line (`# → …`) is missing from its output; each
 * failure names the README line, the command and what was missing, with the output's last lines.
 * The marking convention is in readmeCommands.ts. Exits 1 when any command failed.
 *
 *   bun test/readme/commands.ts [--keep]     (--keep leaves the clone in place to look at)
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"
import { type ReadmeCommand, readmeBlocks } from "./readmeCommands.ts"

/** `npm ci` takes about a minute, the first `npm run batch` on a fresh clone about twenty seconds. */
const COMMAND_BOUND_MS = 240_000
const STOP_BOUND_MS = 15_000
const TAIL_LINES = 25

const root = join(dirname(fileURLToPath(import.meta.url)), "../..")
const keep = process.argv.includes("--keep")

const userPath = (scratch: string): string => {
  const base = ["/usr/bin", "/bin"]
  const node = Bun.which("node")
  if (node === null) throw new Error("node is not on PATH: the README's commands need Node.js and npm")
  if (base.includes(dirname(node))) return base.join(":")
  // Node lives elsewhere (nvm, a tarball): give the user node, npm and npx, and nothing else of that folder.
  const bin = join(scratch, "bin")
  mkdirSync(bin)
  for (const name of ["node", "npm", "npx"]) {
    const found = Bun.which(name)
    if (found !== null) symlinkSync(found, join(bin, name))
  }
  return [...base, bin].join(":")
}

const userEnv = (path: string): Record<string, string> => {
  const env: Record<string, string> = {}
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue
    if (/^(LOADERS_|OTEL_|AWS_|RESEND_|npm_|BUN_)/.test(name)) continue
    if (["DATABASE_URL", "PORT", "NODE_OPTIONS", "NODE_PATH"].includes(name)) continue
    env[name] = value
  }
  env.PATH = path
  return env
}

interface Outcome {
  readonly failure: string | undefined
  readonly seconds: number
}

const describe = (command: ReadmeCommand) => `README.md:${command.line}: \`${command.command}\``

const tail = (output: string) => output.trimEnd().split("\n").slice(-TAIL_LINES).map((l) => `    | ${l}`).join("\n")

const missingLines = (command: ReadmeCommand, output: string) => {
  const lines = output.split("\n")
  return command.expect.filter((text) => !lines.some((line) => line.includes(text)))
}

const start = (command: ReadmeCommand, cwd: string, env: Record<string, string>) => {
  // Its own process group, so that a server and everything it started are stopped together.
  const child = spawn("bash", ["-c", command.command], { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] })
  let output = ""
  const listeners: Array<() => void> = []
  const take = (chunk: Buffer) => {
    output += chunk.toString()
    for (const listener of listeners) listener()
  }
  child.stdout!.on("data", take)
  child.stderr!.on("data", take)
  const exited = new Promise<number | string>((resolve) =>
    child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"))
  )
  return { child, exited, output: () => output, onOutput: (f: () => void) => listeners.push(f) }
}

/** Whether any process of group `pid` is alive. */
const groupAlive = (pid: number) => {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * Stops the command's whole process group: `npm run` exits at once on SIGTERM while the server it
 * started still shuts down (and holds the embedded database's lock), so wait for every process.
 */
const stopGroup = async (child: ChildProcess, exited: Promise<unknown>) => {
  if (child.pid === undefined || !groupAlive(child.pid)) return
  process.kill(-child.pid, "SIGTERM")
  for (const deadline = Date.now() + STOP_BOUND_MS; groupAlive(child.pid) && Date.now() < deadline;) await Bun.sleep(100)
  if (groupAlive(child.pid)) process.kill(-child.pid, "SIGKILL")
  await exited
  for (const deadline = Date.now() + STOP_BOUND_MS; groupAlive(child.pid) && Date.now() < deadline;) await Bun.sleep(100)
}

const runForeground = async (command: ReadmeCommand, cwd: string, env: Record<string, string>): Promise<Outcome> => {
  const began = performance.now()
  const run = start(command, cwd, env)
  const result = await Promise.race([run.exited, Bun.sleep(COMMAND_BOUND_MS).then(() => "bound" as const)])
  if (result === "bound") await stopGroup(run.child, run.exited)
  const seconds = (performance.now() - began) / 1000
  const output = run.output()
  if (result === "bound") {
    return { seconds, failure: `${describe(command)} still running after ${COMMAND_BOUND_MS / 1000} s\n${tail(output)}` }
  }
  if (result !== 0) return { seconds, failure: `${describe(command)} exited with ${result}\n${tail(output)}` }
  const missing = missingLines(command, output)
  if (missing.length > 0) {
    const what = missing.map((m) => `"${m}"`).join(", ")
    return { seconds, failure: `${describe(command)} printed no line containing ${what}\n${tail(output)}` }
  }
  return { seconds, failure: undefined }
}

/** Starts a server and waits until every expected line has appeared; it is stopped with its block. */
const runBackground = async (command: ReadmeCommand, cwd: string, env: Record<string, string>) => {
  const began = performance.now()
  const run = start(command, cwd, env)
  const ready = new Promise<void>((resolve) => {
    const check = () => {
      if (missingLines(command, run.output()).length === 0) resolve()
    }
    run.onOutput(check)
    check()
  })
  const result = await Promise.race([
    ready.then(() => "ready" as const),
    run.exited.then((code) => ({ code })),
    Bun.sleep(COMMAND_BOUND_MS).then(() => "bound" as const)
  ])
  const seconds = (performance.now() - began) / 1000
  const stop = () => stopGroup(run.child, run.exited)
  if (result === "ready") return { outcome: { seconds, failure: undefined }, stop }
  await stop()
  const missing = missingLines(command, run.output()).map((m) => `"${m}"`).join(", ")
  const why = result === "bound"
    ? `printed no line containing ${missing} within ${COMMAND_BOUND_MS / 1000} s`
    : `exited with ${result.code} before printing a line containing ${missing}`
  return { outcome: { seconds, failure: `${describe(command)} (in the background) ${why}\n${tail(run.output())}` }, stop }
}

const main = async () => {
  const scratch = mkdtempSync(join(tmpdir(), "loaders-readme-"))
  const clone = join(scratch, "loaders")
  execFileSync("git", ["clone", "-q", root, clone])
  // The clone's README: the one a new user reads, as committed.
  const blocks = readmeBlocks(readFileSync(join(clone, "README.md"), "utf8"))
  const path = userPath(scratch)
  for (const tool of ["bun", "deno"]) {
    const found = Bun.which(tool, { PATH: path })
    if (found !== null) throw new Error(`${tool} is on the user PATH (${found}): the check would not be that of a Node-only machine`)
  }
  const env = userEnv(path)
  console.log(`README commands, in a fresh clone (${clone}), PATH=${path}`)

  const failures: Array<string> = []
  let ran = 0
  let notRun = 0
  const began = performance.now()
  for (const block of blocks) {
    if (block.notRun !== undefined) {
      for (const command of block.commands) {
        notRun++
        console.log(`  not run  ${describe(command)}: ${block.notRun}`)
      }
      continue
    }
    const servers: Array<() => Promise<void>> = []
    for (const command of block.commands) {
      ran++
      let outcome: Outcome
      if (command.background) {
        const started = await runBackground(command, clone, env)
        servers.push(started.stop)
        outcome = started.outcome
      } else {
        outcome = await runForeground(command, clone, env)
      }
      const took = `${outcome.seconds.toFixed(1)} s`
      if (outcome.failure === undefined) {
        console.log(`  ok       ${describe(command)} (${took}${command.background ? ", left running" : ""})`)
      } else {
        failures.push(outcome.failure)
        console.log(`  FAILED   ${outcome.failure.split("\n")[0]} (${took})`)
      }
    }
    for (const stop of servers) await stop()
  }
  const total = ((performance.now() - began) / 1000).toFixed(0)
  if (keep) console.log(`clone kept in ${clone}`)
  else rmSync(scratch, { recursive: true, force: true })
  for (const failure of failures) console.log(`\n${failure}`)
  console.log(`\nREADME commands: ${ran - failures.length} of ${ran} ran as written, ${notRun} not run (reason given), in ${total} s`)
  return failures.length === 0 ? 0 : 1
}

process.exit(await main())
