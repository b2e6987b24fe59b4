import { PGlite } from "@electric-sql/pglite"
import { Clock, Config, Context, Data, Duration, Effect, Layer, Option, Redacted, Result, Schedule, Schema, Scope, Semaphore } from "effect"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { basename, isAbsolute, join, relative, resolve } from "node:path"
import postgres from "postgres"
import { tryLockFile } from "./FileLock.ts"

/**
 * Why a database call failed. `ConnectionLost`: the connection broke, or could not be opened;
 * `Timeout`: no answer within the bound (`LOADERS_DB_TIMEOUT`); `Refused`: the server refused
 * the statement (`code` says why), or PGlite could not open its files. After a `ConnectionLost`
 * or a `Timeout`, the connection is given up.
 */
export type DatabaseFault = "ConnectionLost" | "Timeout" | "Refused"

/**
 * A database call failed. `operation` names the call (`COMMIT`, `COPY loaders."properties" write`,
 * …); `code` is the PostgreSQL SQLSTATE when the server answered (e.g. `40001` serialization
 * failure).
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string
  readonly reason: DatabaseFault
  readonly code?: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    switch (this.reason) {
      case "ConnectionLost":
        return `database ${this.operation} failed: connection lost (${detail})`
      case "Timeout":
        return `database ${this.operation} failed: ${detail}`
      case "Refused":
        return `database ${this.operation} failed${this.code ? ` (SQLSTATE ${this.code})` : ""}: ${detail}`
    }
  }
}

/** The process that holds a PGlite directory, as it recorded itself in the directory's lock file. */
export interface DatabaseHolder {
  readonly pid: number
  readonly command: string
  /** When it opened the directory (ISO 8601). */
  readonly since: string
}

/**
 * The PGlite directory is open in another process. PGlite is one process's database: a second
 * process on the same files would lose the first one's commits (or its own) when either closes.
 */
export class DatabaseInUse extends Data.TaggedError("DatabaseInUse")<{
  readonly directory: string
  readonly holder: DatabaseHolder | undefined
}> {
  override get message(): string {
    const who = this.holder
      ? `process ${this.holder.pid} (${this.holder.command}, since ${this.holder.since})`
      : "another process"
    return `the embedded database ${this.directory} is in use by ${who}: stop that process, ` +
      `or set LOADERS_PGLITE_DIR to another directory, or use a PostgreSQL server through DATABASE_URL`
  }
}

/** PostgreSQL schema that holds the loaded tables and the ledger. */
export const SCHEMA = "loaders"

/** See `Database.connection`. */
export type DatabaseConnection =
  | { readonly kind: "postgres"; readonly url: Redacted.Redacted<string> }
  | { readonly kind: "pglite"; readonly exclusive: <A>(use: (db: PGlite) => Promise<A>) => Promise<A> }

/** A value bound to a `$n` parameter. */
export type SqlParam = string | number | boolean | null

export interface QueryOptions {
  /**
   * Planned again at every call (default: planned once per connection, the plan kept): for a
   * statement run many times in a transaction while the tables it reads grow, whose best plan
   * changes as they do (a scan of a table that was empty, then an index lookup).
   */
  readonly replan?: boolean
}

/** What can be done on one connection. */
export interface SqlSession {
  /** One statement, `$1…$n` bound to `params`; rows as plain objects. */
  readonly query: <T = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<SqlParam>,
    options?: QueryOptions
  ) => Effect.Effect<ReadonlyArray<T>, DatabaseError>
  /** One statement that returns no rows; answers how many rows it affected. */
  readonly execute: (text: string, params?: ReadonlyArray<SqlParam>) => Effect.Effect<number, DatabaseError>
  /** Several statements separated by `;`, no parameters (migrations, BEGIN/COMMIT). */
  readonly exec: (text: string) => Effect.Effect<void, DatabaseError>
  /**
   * `COPY table (columns) FROM STDIN` in binary format, `tuples` being rows in that format (see
   * `copyRows`) without the header and trailer, which the session adds. The bytes are read during
   * the call only: the caller may reuse them once it returns.
   */
  readonly copyIn: (table: string, columns: ReadonlyArray<string>, tuples: Uint8Array<ArrayBuffer>) => Effect.Effect<void, DatabaseError>
  /**
   * The same `COPY`, kept open while rows are written, so the server stores them as they arrive
   * instead of once per statement. Nothing else may run on the session until it is ended or
   * aborted. A row the server refuses fails a later `write`, or `end`.
   */
  readonly copyStream: (table: string, columns: ReadonlyArray<string>) => Effect.Effect<CopyStream, DatabaseError>
}

/**
 * The session that calls made through `Database` join while it is set (see `joinSession`): a
 * transaction opened by one component (a sink) takes the statements of another (the ledger's
 * fence) without handing it a connection.
 */
const Joined = Context.Reference<SqlSession | undefined>("loaders/Database/Joined", { defaultValue: () => undefined })

/** Runs `effect` with every call it makes through `Database` on `session` (inside its transaction). */
export const joinSession = (session: SqlSession) => <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.provideService(effect, Joined, session)

/** `shared`, except inside `joinSession`, where every call goes to the joined session. */
const joining = (shared: SqlSession): SqlSession => {
  const on = <A, E>(call: (session: SqlSession) => Effect.Effect<A, E>) =>
    Effect.flatMap(Effect.service(Joined), (joined) => call(joined ?? shared))
  return {
    query: (text, params, options) => on((session) => session.query(text, params, options)),
    execute: (text, params) => on((session) => session.execute(text, params)),
    exec: (text) => on((session) => session.exec(text)),
    copyIn: (table, columns, tuples) => on((session) => session.copyIn(table, columns, tuples)),
    copyStream: (table, columns) => on((session) => session.copyStream(table, columns))
  }
}

/** An open `COPY … FROM STDIN` (see `SqlSession.copyStream`). */
export interface CopyStream {
  /**
   * Sends binary tuples; resolves once the connection has taken them (backpressure), after which
   * the caller may reuse the bytes.
   */
  readonly write: (tuples: Uint8Array<ArrayBuffer>) => Effect.Effect<void, DatabaseError>
  /** Completes the statement: every row written is stored, or the first refusal is the error. */
  readonly end: Effect.Effect<void, DatabaseError>
  /** Cancels the statement (the transaction is then aborted); for cleanup, never fails. */
  readonly abort: Effect.Effect<void>
}

/**
 * The PostgreSQL database everything lands in: production Postgres through postgres.js, or the
 * embedded PGlite. Both speak the same SQL, so the sink, the ledger and the migrations are written
 * once against this service.
 */
export class Database extends Context.Service<Database, SqlSession & {
  readonly kind: "postgres" | "pglite"
  /**
   * How a library with a driver of its own (pg-boss) reaches this database: the server's URL, or
   * the embedded instance, lent for one call at a time like any query here — never inside a
   * reserved session's transaction.
   */
  readonly connection: DatabaseConnection
  /**
   * A session on one connection held for the scope, for transactions. On PGlite (a single
   * connection) this excludes every other query until the scope closes: never wait for another
   * session's work while holding one. On Postgres, a session whose call did not finish (connection
   * lost, timed out, interrupted) sends nothing more: its later calls fail at once, and at the end
   * of the scope its server process is terminated rather than its connection reused.
   */
  readonly reserve: Effect.Effect<SqlSession, DatabaseError, Scope.Scope>
}>()("loaders/Database") {
  /**
   * Postgres at `url` (a `postgres://` URL), through a pool of `max` connections. Every wait on the
   * server (connecting, a statement, a COPY write, a commit) ends within `timeout` (default 30 s).
   */
  static readonly layerPostgres = (
    url: Redacted.Redacted<string>,
    options: { readonly max?: number; readonly timeout?: Duration.Input } = {}
  ) => Layer.effect(Database, makePostgres(url, options.max ?? 8, Duration.fromInputUnsafe(options.timeout ?? DEFAULT_TIMEOUT)))

  /**
   * PGlite persisted in `dataDir` (in memory when undefined). The directory is locked for the
   * layer's lifetime: another process opening it fails with `DatabaseInUse`.
   */
  static readonly layerPGlite = (dataDir: string | undefined) => Layer.effect(Database, makePGlite(dataDir))

  /**
   * From the environment: `DATABASE_URL` selects Postgres (waits bounded by `LOADERS_DB_TIMEOUT`);
   * without it, PGlite in `pgliteDir`.
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
      if (Option.isSome(url)) {
        const timeout = yield* Config.Duration("LOADERS_DB_TIMEOUT").pipe(Config.withDefault(DEFAULT_TIMEOUT))
        return Database.layerPostgres(url.value, { timeout })
      }
      return Database.layerPGlite(yield* pgliteDir)
    })
  )
}

const DEFAULT_TIMEOUT = Duration.seconds(30)

/**
 * The embedded PGlite's directory: `LOADERS_PGLITE_DIR`, else `pglite` in `LOADERS_EMBEDDED_DIR`
 * (default `.loaders`), beside the embedded S3's files.
 */
export const pgliteDir = Config.String("LOADERS_PGLITE_DIR").pipe(
  Config.orElse(() => Config.String("LOADERS_EMBEDDED_DIR").pipe(Config.withDefault(".loaders"), Config.map((root) => join(root, "pglite"))))
)

const sqlState = (cause: unknown): string | undefined => {
  if (typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string") {
    return /^[0-9A-Z]{5}$/.test(cause.code) ? cause.code : undefined
  }
  return undefined
}

/** No answer from the server within the bound. */
class NoAnswer extends Error {}

/** The connection closed under an open COPY without an error of its own. */
class CopyClosed extends Error {}

/**
 * Codes of a connection that broke or could not be made: postgres.js's own, the socket's, and the
 * server's when it ends the session (SQLSTATE class 08; 57P01–57P03: terminated by an administrator,
 * server crash, server starting or stopping).
 */
const LOST = new Set([
  "CONNECTION_CLOSED", "CONNECTION_DESTROYED", "CONNECTION_ENDED", "CONNECT_TIMEOUT",
  "ECONNRESET", "ECONNREFUSED", "ECONNABORTED", "EPIPE", "ECANCELED", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH",
  "ERR_STREAM_DESTROYED", "57P01", "57P02", "57P03"
])

const fault = (operation: string, cause: unknown): DatabaseError => {
  if (cause instanceof NoAnswer) return new DatabaseError({ operation, reason: "Timeout", cause })
  const code = typeof cause === "object" && cause !== null && "code" in cause ? String(cause.code) : ""
  const lost = cause instanceof CopyClosed || LOST.has(code) || code.startsWith("08")
  return new DatabaseError({ operation, reason: lost ? "ConnectionLost" : "Refused", code: sqlState(cause), cause })
}

const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, DatabaseError> =>
  Effect.tryPromise({ try: run, catch: (cause) => fault(operation, cause) })

/**
 * `run`, failed with `NoAnswer` once `limit` passes. The bound is on the promise, not a fiber
 * interruption, because some calls run uninterruptibly (a COPY is recorded as it opens) and must
 * end all the same.
 */
const within = <A>(limit: Duration.Duration, setting: string, run: () => Promise<A>): Promise<A> =>
  new Promise<A>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new NoAnswer(`no answer within ${Duration.format(limit)} (${setting})`)),
      Duration.toMillis(limit)
    )
    const settle = <X>(done: (x: X) => void) => (x: X) => {
      clearTimeout(timer)
      done(x)
    }
    Promise.resolve().then(run).then(settle(resolve), settle(reject))
  })

/** The statement's first word (`SELECT`, `COMMIT`, …), to name the operation in errors. */
const verb = (text: string): string => text.trimStart().split(/\s|;/, 1)[0]?.toUpperCase() || "statement"

const copyStatement = (table: string, columns: ReadonlyArray<string>, source: string): string =>
  `COPY ${table} (${columns.map((c) => `"${c}"`).join(", ")}) FROM ${source} (FORMAT binary)`

/**
 * What opens binary COPY data: a signature, flags and an empty header extension. Binary rather
 * than text because the server then parses no dates, numbers or escapes: 11.0 against 14.2 CPU
 * seconds for the 1 GB benchmark file's rows.
 */
export const BINARY_HEADER = new Uint8Array([0x50, 0x47, 0x43, 0x4f, 0x50, 0x59, 0x0a, 0xff, 0x0d, 0x0a, 0x00, 0, 0, 0, 0, 0, 0, 0, 0])

/** What closes binary COPY data: a tuple of -1 fields. */
export const BINARY_TRAILER = new Uint8Array([0xff, 0xff])

type PostgresConnection = postgres.Sql | postgres.ReservedSql

/** One bounded call to the server, named `operation` in its error. */
type Call = <A>(operation: string, run: () => Promise<A>) => Effect.Effect<A, DatabaseError>

/**
 * `COPY … FROM STDIN` on postgres.js. A refusal the server sends while rows still flow destroys
 * the stream; one sent after the last row ends it with the error only with
 * patches/postgres+3.4.9.patch (upstream porsager/postgres#1183) — unpatched, `end` would hang.
 * A write or end waiting when the stream fails (its connection closed, say) fails with it. The same
 * patch sends a write's bytes to the socket as they are instead of copying them into one message
 * (1 GB: 1.1–4.5 CPU-s fewer, 30–90k fewer page faults): they must stay untouched until the write
 * resolves, as `CopyStream.write` says.
 */
const copyStream = (conn: PostgresConnection, call: Call, table: string, columns: ReadonlyArray<string>) => {
  const name = `COPY ${table}`
  return Effect.map(call(name, () => conn.unsafe(copyStatement(table, columns, "STDIN")).writable()), (writable): CopyStream => {
    let failure: unknown
    const waiting = new Set<(error: unknown) => void>()
    const fail = (error: unknown) => {
      failure ??= error
      for (const reject of waiting) reject(failure)
      waiting.clear()
    }
    writable.on("error", fail)
    writable.on("close", () => {
      if (!writable.writableFinished) fail(new CopyClosed("the connection closed during the COPY"))
    })
    const settle = (step: string, start: (done: (error?: unknown) => void) => void) =>
      call(`${name} ${step}`, () =>
        new Promise<void>((resolve, reject) => {
          if (failure !== undefined) return reject(failure)
          waiting.add(reject)
          start((error) => {
            waiting.delete(reject)
            if (error === undefined || error === null) resolve()
            else reject(failure ?? error)
          })
        }))
    // Waited for with the first write: a write or end fails with the stream.
    writable.write(BINARY_HEADER)
    return {
      write: (tuples) => settle("write", (done) => writable.write(tuples, (error) => done(error))),
      end: settle("end", (done) => writable.end(BINARY_TRAILER, done)),
      abort: Effect.sync(() => {
        if (!writable.writableFinished && !writable.destroyed) writable.destroy(new Error("COPY abandoned"))
      })
    }
  })
}

const postgresSession = (conn: PostgresConnection, call: Call): SqlSession => ({
  query: <T>(text: string, params: ReadonlyArray<SqlParam> = [], options: QueryOptions = {}) =>
    call(verb(text), () => conn.unsafe(text, [...params], { prepare: !options.replan }).then((rows) => Array.from(rows) as Array<T>)),
  execute: (text, params = []) => call(verb(text), () => conn.unsafe(text, [...params]).then((result) => result.count)),
  exec: (text) => call(verb(text), () => conn.unsafe(text).simple()).pipe(Effect.asVoid),
  // Never left half-way: a connection inside an unfinished COPY would queue the ROLLBACK forever.
  copyIn: (table, columns, tuples) =>
    Effect.uninterruptible(
      Effect.flatMap(copyStream(conn, call, table, columns), (stream) =>
        Effect.andThen(stream.write(tuples), stream.end).pipe(Effect.onError(() => stream.abort)))
    ),
  copyStream: (table, columns) => copyStream(conn, call, table, columns)
})

/**
 * Why a reserved connection was given up, if it was: its connection closed (postgres.js has
 * dropped it from the pool), or a call on it did not finish (it may still be running there).
 */
interface Link {
  given: { readonly error: DatabaseError; readonly closed: boolean } | undefined
}

const makePostgres = Effect.fnUntraced(function*(url: Redacted.Redacted<string>, max: number, limit: Duration.Duration) {
  const seconds = Math.max(1, Math.ceil(Duration.toSeconds(limit)))
  const sql = yield* Effect.acquireRelease(
    Effect.sync(() =>
      postgres(Redacted.value(url), {
        max,
        onnotice: () => {},
        // Dates and bigints stay strings: reports and tests compare exact values, not JS numbers.
        types: {},
        connection: { application_name: "loaders" },
        connect_timeout: seconds,
        // TCP keep-alive probes start after this much silence, so a dead peer is noticed at last.
        keep_alive: seconds
      })
    ),
    (sql) => Effect.ignore(attempt("end", () => within(limit, "LOADERS_DB_TIMEOUT", () => sql.end({ timeout: 5 }))))
  )

  const bounded = (link: Link | undefined): Call => (operation, run) =>
    Effect.suspend(() => {
      if (link?.given !== undefined) {
        return Effect.fail(new DatabaseError({ operation, reason: "ConnectionLost", cause: link.given.error }))
      }
      const call = attempt(operation, () => within(limit, "LOADERS_DB_TIMEOUT", run))
      if (link === undefined) return call
      const giveUp = (error: DatabaseError, closed: boolean) => Effect.sync(() => (link.given ??= { error, closed }))
      return call.pipe(
        Effect.tapError((error) => (error.reason === "Refused" ? Effect.void : giveUp(error, error.reason === "ConnectionLost"))),
        Effect.onInterrupt(() =>
          giveUp(new DatabaseError({ operation, reason: "Timeout", cause: new Error("interrupted before the server answered") }), false)
        )
      )
    })
  const pool = bounded(undefined)
  yield* pool("connect", () => sql`select 1`)

  // A reservation granted after its deadline goes back to the pool at once.
  const reserveConnection = Effect.suspend(() => {
    let abandoned = false
    const late = (conn: postgres.ReservedSql) => {
      if (abandoned) conn.release()
      return conn
    }
    return pool("reserve", () => sql.reserve().then(late)).pipe(
      Effect.tapError(() => Effect.sync(() => (abandoned = true)))
    )
  })

  // Closed: postgres.js has already dropped it. A call may still be running on it otherwise, maybe
  // inside the transaction: end its server process (which rolls back) rather than hand it on.
  const giveBack = (conn: postgres.ReservedSql, link: Link, pid: number | undefined) =>
    link.given === undefined
      ? Effect.sync(() => conn.release())
      : link.given.closed || pid === undefined
      ? Effect.void
      : pool("pg_terminate_backend", () => sql`select pg_terminate_backend(${pid})`).pipe(Effect.ignore)

  const reserve = Effect.acquireRelease(
    Effect.gen(function*() {
      const conn = yield* reserveConnection
      const link: Link = { given: undefined }
      const call = bounded(link)
      const pid = yield* call("SELECT pg_backend_pid()", () => conn<Array<{ pid: number }>>`select pg_backend_pid() as pid`).pipe(
        Effect.map((rows) => rows[0]?.pid),
        Effect.tapError(() => giveBack(conn, link, undefined))
      )
      return { conn, link, pid, session: postgresSession(conn, call) }
    }),
    ({ conn, link, pid }) => giveBack(conn, link, pid)
  ).pipe(Effect.map(({ session }) => session))

  return Database.of({ kind: "postgres", connection: { kind: "postgres", url }, ...joining(postgresSession(sql, pool)), reserve })
})

const LOCK_FILE = "loaders.lock"

/** This process's command as a user would type it, e.g. `bun src/entrypoints/serve.bun.ts`. */
const runningCommand = (): string => {
  const runtime = "Deno" in globalThis ? "deno" : process.versions.bun !== undefined ? "bun" : basename(process.argv[0] ?? "")
  const args = process.argv.slice(1).map((arg) => {
    const path = relative(process.cwd(), arg)
    return isAbsolute(arg) && !path.startsWith("..") ? path : arg
  })
  return [runtime, ...args].join(" ")
}

const Holder = Schema.fromJsonString(Schema.Struct({ pid: Schema.Number, command: Schema.String, since: Schema.String }))
const decodeHolder = Schema.decodeUnknownResult(Holder)

/** The holder's record; it writes it right after taking the lock, so an empty file is read again. */
const readHolder = (path: string) =>
  Effect.try(() => decodeHolder(readFileSync(path, "utf8"))).pipe(
    Effect.flatMap((decoded) => (Result.isSuccess(decoded) ? Effect.succeed(decoded.success) : Effect.fail(decoded.failure))),
    Effect.retry({ schedule: Schedule.spaced(Duration.millis(50)), times: 20 }),
    Effect.option,
    Effect.map(Option.getOrUndefined)
  )

/**
 * Holds `dataDir` for the scope: a `flock` on `<dataDir>/loaders.lock` (released by the kernel
 * however the process ends), with this process's pid, command and start time written in it for
 * whoever finds the directory taken.
 */
const holdDirectory = Effect.fnUntraced(function*(dataDir: string) {
  const directory = resolve(dataDir)
  const path = join(directory, LOCK_FILE)
  yield* Effect.try({
    try: () => mkdirSync(directory, { recursive: true }),
    catch: (cause) => new DatabaseError({ operation: "open", reason: "Refused", cause })
  })
  const lock = yield* Effect.acquireRelease(tryLockFile(path), (lock) => lock?.release ?? Effect.void)
  if (lock === undefined) return yield* new DatabaseInUse({ directory, holder: yield* readHolder(path) })
  const holder: DatabaseHolder = {
    pid: process.pid,
    command: runningCommand(),
    since: new Date(yield* Clock.currentTimeMillis).toISOString()
  }
  yield* Effect.try({
    try: () => writeFileSync(path, `${JSON.stringify(holder)}\n`),
    catch: (cause) => new DatabaseError({ operation: "open", reason: "Refused", cause })
  })
})

const makePGlite = Effect.fnUntraced(function*(dataDir: string | undefined) {
  if (dataDir !== undefined) yield* holdDirectory(dataDir)
  const db = yield* Effect.acquireRelease(
    attempt("open", async () => {
      const db = new PGlite(dataDir)
      await db.waitReady
      return db
    }),
    (db) => Effect.promise(() => db.close())
  )
  // One connection: a reserved session must keep every other query out until it is released,
  // or they would run inside its transaction.
  const lock = yield* Semaphore.make(1)

  const session: SqlSession = {
    // PGlite plans each query as it comes.
    query: <T>(text: string, params: ReadonlyArray<SqlParam> = []) =>
      attempt(verb(text), async () => (await db.query<T>(text, [...params])).rows),
    execute: (text, params = []) =>
      attempt(verb(text), async () => (await db.query(text, [...params])).affectedRows ?? 0),
    exec: (text) => attempt(verb(text), () => db.exec(text)).pipe(Effect.asVoid),
    // The blob is a copy: the caller's bytes are free again when this returns.
    copyIn: (table, columns, tuples) =>
      attempt(`COPY ${table}`, () =>
        db.query(copyStatement(table, columns, "'/dev/blob'"), [], { blob: new Blob([BINARY_HEADER, tuples, BINARY_TRAILER]) }))
        .pipe(Effect.asVoid),
    // PGlite copies from a whole blob: each write is a statement of its own.
    copyStream: (table, columns) =>
      Effect.succeed({ write: (tuples) => session.copyIn(table, columns, tuples), end: Effect.void, abort: Effect.void })
  }
  const shared: SqlSession = {
    query: (text, params, options) => lock.withPermit(session.query(text, params, options)),
    execute: (text, params) => lock.withPermit(session.execute(text, params)),
    exec: (text) => lock.withPermit(session.exec(text)),
    copyIn: (table, columns, tuples) => lock.withPermit(session.copyIn(table, columns, tuples)),
    copyStream: (table, columns) =>
      Effect.succeed({
        write: (tuples) => lock.withPermit(session.copyIn(table, columns, tuples)),
        end: Effect.void,
        abort: Effect.void
      })
  }

  return Database.of({
    kind: "pglite",
    connection: {
      kind: "pglite",
      exclusive: (use) =>
        Effect.runPromise(lock.withPermit(Effect.tryPromise({ try: () => use(db), catch: (cause) => cause })))
    },
    ...joining(shared),
    reserve: Effect.acquireRelease(lock.take(1), () => lock.release(1)).pipe(Effect.as(session))
  })
})

/**
 * Applies idempotent DDL in one transaction under an advisory lock, so several workers (or the
 * sink and the ledger of one process) starting together never race on `CREATE … IF NOT EXISTS`.
 */
export const migrate = (db: Database["Service"], statements: ReadonlyArray<string>) =>
  Effect.scoped(
    Effect.gen(function*() {
      const session = yield* db.reserve
      yield* Effect.gen(function*() {
        yield* session.exec("BEGIN")
        yield* session.query("SELECT pg_advisory_xact_lock(hashtext('loaders.migrate'))")
        for (const statement of statements) yield* session.exec(statement)
        yield* session.exec("COMMIT")
      }).pipe(Effect.onError(() => session.exec("ROLLBACK").pipe(Effect.ignore)))
    })
  )
