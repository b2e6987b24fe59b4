import { Data, Effect } from "effect"
import { closeSync, constants, openSync } from "node:fs"

/**
 * An exclusive `flock(2)` lock on a file, held by this process until `release` or its exit. The
 * kernel drops it when the process dies, however it dies (SIGKILL included), so a lock is never
 * stale and a reused pid cannot fool it. Bun and Deno take the same kind of lock, so a Deno
 * `serve` and a Bun `batch` exclude each other.
 */
export interface FileLock {
  readonly release: Effect.Effect<void>
}

/** This runtime cannot take a file lock (not Bun or Deno, or no C library to call `flock` in). */
export class FileLockUnavailable extends Data.TaggedError("FileLockUnavailable")<{
  readonly path: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `cannot lock ${this.path}: ${detail}`
  }
}

/** The part of Deno's API used here (Deno's types are not in this project's tsconfig). */
interface DenoFile {
  tryLockSync(exclusive: boolean): boolean
  close(): void
}
interface DenoApi {
  openSync(path: string, options: { read: boolean; write: boolean; create: boolean }): DenoFile
}

const LOCK_EX = 2
const LOCK_NB = 4

/** Bun has no file-lock API: `flock` from the C library through `bun:ffi`. */
const bunFlock = (ffi: typeof import("bun:ffi"), path: string): FileLock | undefined => {
  const libc = ffi.dlopen(process.platform === "darwin" ? "libc.dylib" : "libc.so.6", {
    flock: { args: [ffi.FFIType.i32, ffi.FFIType.i32], returns: ffi.FFIType.i32 }
  })
  const fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o644)
  // A refusal is taken as "held": EWOULDBLOCK is the only failure left once the file is open.
  const locked = libc.symbols.flock(fd, LOCK_EX | LOCK_NB) === 0
  libc.close()
  if (!locked) {
    closeSync(fd)
    return undefined
  }
  // Closing the only descriptor of the open file releases the lock.
  return { release: Effect.sync(() => closeSync(fd)) }
}

const denoFlock = (deno: DenoApi, path: string): FileLock | undefined => {
  const file = deno.openSync(path, { read: true, write: true, create: true })
  if (file.tryLockSync(true)) return { release: Effect.sync(() => file.close()) }
  file.close()
  return undefined
}

/**
 * Takes the lock on `path` (created if missing) without waiting: `undefined` when another process
 * (or another open of the file in this one) holds it.
 */
export const tryLockFile = (path: string): Effect.Effect<FileLock | undefined, FileLockUnavailable> => {
  const deno = (globalThis as { Deno?: DenoApi }).Deno
  const fail = (cause: unknown) => new FileLockUnavailable({ path, cause })
  if (deno !== undefined) return Effect.try({ try: () => denoFlock(deno, path), catch: fail })
  if (process.versions.bun === undefined) return Effect.fail(fail(new Error("file locks need Bun or Deno")))
  return Effect.tryPromise({ try: () => import("bun:ffi"), catch: fail }).pipe(
    Effect.flatMap((ffi) => Effect.try({ try: () => bunFlock(ffi, path), catch: fail }))
  )
}
