import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { onStop } from "./services.ts"
import { until } from "./wait.ts"

const ROOT = fileURLToPath(new URL("../../", import.meta.url))

/** OpenSSH's client, from Debian's openssh-client (`.ci/run` installs it). */
export const SFTP = "/usr/bin/sftp"

/** A new ed25519 key pair made by ssh-keygen in `dir`: the private key's path and the public key line. */
export const sshKey = (dir: string, name: string) => {
  const path = join(dir, name)
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path])
  return { path, publicKey: readFileSync(`${path}.pub`, "utf8").trim() }
}

/**
 * Starts `npm run sftp` (its launcher, under this Bun) with `env` and `args`, on a free port unless
 * `env` says otherwise, and waits until it listens. Killed at the end of the run if still alive.
 */
export const startSftpServer = async (env: Record<string, string>, args: ReadonlyArray<string> = []) => {
  let output = ""
  const child: ChildProcess = spawn(process.execPath, ["src/entrypoints/sftp.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, LOADERS_SFTP_PORT: "0", LOADERS_LOG_FORMAT: "json", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })
  onStop(async () => {
    if (child.exitCode === null) child.kill("SIGKILL")
  })
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()))
  const port = await until(60_000, () => `the sftp server did not start:\n${output}`, async () => {
    if (child.exitCode !== null) throw new Error(`the sftp server exited with ${child.exitCode}:\n${output}`)
    const match = /loaders sftp listening on [^\s]+:(\d+)/.exec(output)
    return match ? Number(match[1]) : undefined
  })
  return {
    port,
    child,
    output: () => output,
    /** Waits until the server's output holds `text` (`count` times), for at most `ms`. */
    logged: (text: string, ms = 30_000, count = 1) =>
      until(ms, () => `the sftp server never logged ${JSON.stringify(text)}:\n${output.slice(-3000)}`, async () =>
        output.split(text).length - 1 >= count ? true : undefined),
    /** Peak resident set size of the server process so far, in bytes (VmHWM). */
    peakRss: () => {
      const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))
      return match ? Number(match[1]) * 1024 : Number.NaN
    },
    /** Sends SIGTERM and resolves with the exit code. */
    stop: () =>
      new Promise<number | null>((resolve) => {
        if (child.exitCode !== null) return resolve(child.exitCode)
        child.once("exit", (code) => resolve(code))
        child.kill("SIGTERM")
      })
  }
}

/** The arguments of OpenSSH's `sftp` in batch mode (`-b -`: commands on stdin) against a local server. */
export const sftpArgs = (port: number, key: string, user: string, extra: ReadonlyArray<string> = []) => [
  "-b", "-", "-i", key, "-P", String(port),
  "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "IdentitiesOnly=yes",
  "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=20",
  ...extra,
  `${user}@127.0.0.1`
]

/**
 * Runs OpenSSH's `sftp` in batch mode with `commands` (one per line) from `cwd`, to its end (at
 * most `ms`): its exit status and output. In batch mode a failed command ends the run with status 1
 * unless prefixed with `-`.
 */
export const sftpBatch = (
  port: number,
  key: string,
  user: string,
  commands: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly ms?: number; readonly extra?: ReadonlyArray<string> } = {}
) =>
  new Promise<{ readonly status: number | null; readonly out: string }>((resolve, reject) => {
    const child = spawn(SFTP, sftpArgs(port, key, user, options.extra), { cwd: options.cwd, stdio: ["pipe", "pipe", "pipe"] })
    let out = ""
    child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()))
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()))
    const timer = setTimeout(() => {
      child.kill("SIGKILL")
      reject(new Error(`sftp ${commands.join("; ")} did not end within ${options.ms ?? 60_000} ms:\n${out}`))
    }, options.ms ?? 60_000)
    child.on("exit", (status) => {
      clearTimeout(timer)
      resolve({ status, out })
    })
    child.stdin.end(commands.map((line) => `${line}\n`).join(""))
  })
