import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs"
import { createServer } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import postgres from "postgres"
import { onStop } from "./services.ts"
import { sharedServices, uniqueSuffix } from "./sharedServices.ts"

/** Debian keeps the server binaries off PATH, under /usr/lib/postgresql/<version>/bin. */
const binaries = (): string => {
  const root = "/usr/lib/postgresql"
  const versions = existsSync(root) ? readdirSync(root).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a)) : []
  const found = versions.map((v) => join(root, v, "bin")).find((dir) => existsSync(join(dir, "initdb")))
  if (!found) throw new Error("PostgreSQL server binaries not found under /usr/lib/postgresql (apt-get install postgresql)")
  return found
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/** initdb refuses to run as root: run the server tools as the `postgres` user then. */
const asServerUser = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
  process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, [...args]]

/** A PostgreSQL server of its own: a throwaway cluster on a free loopback port, removed at the end of the run. */
export interface Cluster {
  readonly port: number
  /** A new, empty database on it; answers its connection URL. */
  readonly freshDatabase: () => Promise<string>
  /** Stops the server (`pg_ctl stop -m <mode>`) and waits until it is down. */
  readonly stop: (mode: "fast" | "immediate") => Promise<void>
  /** Starts it again, same port and data, and waits until it answers. */
  readonly start: () => Promise<void>
}

let shared: Promise<Cluster> | undefined
let databases = 0

/** The run's shared cluster: `npm test`'s, or started once by the preload before any test. */
export const startCluster = (): Promise<Cluster> => {
  const services = sharedServices()
  shared ??= services ? Promise.resolve(attached(services.postgresPort)) : newCluster()
  return shared
}

const admin = (port: number) =>
  postgres({ host: "127.0.0.1", port, user: "postgres", database: "postgres", onnotice: () => {}, max: 1 })

const freshDatabaseOn = (port: number) => async () => {
  const name = `test_${uniqueSuffix()}_${++databases}`
  const sql = admin(port)
  await sql.unsafe(`CREATE DATABASE ${name}`)
  await sql.end()
  return `postgres://postgres@127.0.0.1:${port}/${name}`
}

/** The cluster `npm test` runs for every test process: only the run that started it stops it. */
const attached = (port: number): Cluster => {
  const refuse = () => Promise.reject(new Error("the run's shared cluster is not stopped by a test: use dedicatedCluster()"))
  return { port, freshDatabase: freshDatabaseOn(port), stop: refuse, start: refuse }
}

/** A cluster of its own, for a test that stops and starts its server. */
export const dedicatedCluster = (): Promise<Cluster> => newCluster()

const newCluster = async (): Promise<Cluster> => {
  const bin = binaries()
  const dir = mkdtempSync(join(tmpdir(), "loaders-pg-"))
  const data = join(dir, "data")
  if (process.getuid?.() === 0) {
    const { uid, gid } = userIds("postgres")
    chownSync(dir, uid, gid)
  }
  chmodSync(dir, 0o700)
  const port = await freePort()
  const [initdb, initArgs] = asServerUser(join(bin, "initdb"), ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8"])
  execFileSync(initdb, initArgs, { stdio: "pipe" })

  let child: ChildProcess | undefined
  let log = ""
  const start = async () => {
    const [server, serverArgs] = asServerUser(join(bin, "postgres"), [
      "-D", data, "-p", String(port), "-k", dir, "-c", "listen_addresses=127.0.0.1",
      "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200"
    ])
    const started = spawn(server, serverArgs, { stdio: ["ignore", "ignore", "pipe"] })
    child = started
    started.stderr?.on("data", (chunk: Buffer) => {
      log += chunk.toString()
    })
    for (let attempt = 0; attempt < 100; attempt++) {
      const sql = admin(port)
      const ready = await sql`select 1`.then(() => true, () => false)
      await sql.end()
      if (ready) return
      if (started.exitCode !== null) break
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
    throw new Error(`PostgreSQL did not start on port ${port}:\n${log}`)
  }
  const stop = async (mode: "fast" | "immediate") => {
    const running = child
    if (running === undefined || running.exitCode !== null) return
    const exited = new Promise((resolve) => running.once("exit", resolve))
    const [pgCtl, stopArgs] = asServerUser(join(bin, "pg_ctl"), ["stop", "-D", data, "-m", mode, "-w"])
    try {
      execFileSync(pgCtl, stopArgs, { stdio: "pipe" })
    } catch {
      // Already stopping or gone: make sure of it.
      running.kill("SIGKILL")
    }
    await exited
  }
  onStop(async () => {
    await stop("immediate")
    rmSync(dir, { recursive: true, force: true })
  })
  await start()
  return {
    port,
    freshDatabase: freshDatabaseOn(port),
    stop,
    start
  }
}

const userIds = (name: string) => {
  const uid = Number(execFileSync("id", ["-u", name]).toString().trim())
  const gid = Number(execFileSync("id", ["-g", name]).toString().trim())
  return { uid, gid }
}

/**
 * A fresh database on the run's shared throwaway PostgreSQL cluster (on a free loopback port,
 * stopped at the end of the run); returns its connection URL.
 */
export const freshDatabase = async (): Promise<string> => (await startCluster()).freshDatabase()
