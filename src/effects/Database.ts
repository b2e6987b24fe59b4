import { PGlite } from "@electric-sql/pglite"
import { Config, Context, Data, Effect, Layer, Option, Redacted, Scope, Semaphore } from "effect"
import postgres from "postgres"

/**
 * A database call failed. `code` is the PostgreSQL SQLSTATE when the server answered (e.g.
 * `40001` serialization failure), absent for connection faults.
 */
export class DatabaseError extends Data.TaggedError("DatabaseError")<{
  readonly operation: string
  readonly code?: string
  readonly cause: unknown
}> {
  override get message(): string {
    const detail = this.cause instanceof Error ? this.cause.message : String(this.cause)
    return `database ${this.operation} failed${this.code ? ` (SQLSTATE ${this.code})` : ""}: ${detail}`
  }
}

/** A value bound to a `$n` parameter. */
export type SqlParam = string | number | boolean | null

/** What can be done on one connection. */
export interface SqlSession {
  /** One statement, `$1…$n` bound to `params`; rows as plain objects. */
  readonly query: <T = Record<string, unknown>>(
    text: string,
    params?: ReadonlyArray<SqlParam>
  ) => Effect.Effect<ReadonlyArray<T>, DatabaseError>
  /** One statement that returns no rows; answers how many rows it affected. */
  readonly execute: (text: string, params?: ReadonlyArray<SqlParam>) => Effect.Effect<number, DatabaseError>
  /** Several statements separated by `;`, no parameters (migrations, BEGIN/COMMIT). */
  readonly exec: (text: string) => Effect.Effect<void, DatabaseError>
  /**
   * `COPY table (columns) FROM STDIN` with `data` in PostgreSQL's text format (tab-separated,
   * `\N` for null, one row per line, see `copyCell`).
   */
  readonly copyIn: (table: string, columns: ReadonlyArray<string>, data: string) => Effect.Effect<void, DatabaseError>
  /**
   * The same `COPY`, kept open while rows are written, so the server stores them as they arrive
   * instead of once per statement. Nothing else may run on the session until it is ended or
   * aborted. A row the server refuses fails a later `write`, or `end`.
   */
  readonly copyStream: (table: string, columns: ReadonlyArray<string>) => Effect.Effect<CopyStream, DatabaseError>
}

/** An open `COPY … FROM STDIN` (see `SqlSession.copyStream`). */
export interface CopyStream {
  /** Sends rows in text format; resolves once the connection has taken them (backpressure). */
  readonly write: (data: string) => Effect.Effect<void, DatabaseError>
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
   * A session on one connection held for the scope, for transactions. On PGlite (a single
   * connection) this excludes every other query until the scope closes: never wait for another
   * session's work while holding one.
   */
  readonly reserve: Effect.Effect<SqlSession, DatabaseError, Scope.Scope>
}>()("loaders/Database") {
  /** Postgres at `url` (a `postgres://` URL), through a pool of `max` connections. */
  static readonly layerPostgres = (url: Redacted.Redacted<string>, options: { readonly max?: number } = {}) =>
    Layer.effect(Database, makePostgres(url, options.max ?? 8))

  /** PGlite persisted in `dataDir` (in memory when undefined). */
  static readonly layerPGlite = (dataDir: string | undefined) => Layer.effect(Database, makePGlite(dataDir))

  /**
   * From the environment: `DATABASE_URL` selects Postgres; without it, PGlite in
   * `LOADERS_PGLITE_DIR` (default `.loaders/pglite`).
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const url = yield* Config.option(Config.Redacted("DATABASE_URL"))
      if (Option.isSome(url)) return Database.layerPostgres(url.value)
      const dir = yield* Config.String("LOADERS_PGLITE_DIR").pipe(Config.withDefault(".loaders/pglite"))
      return Database.layerPGlite(dir)
    })
  )
}

const sqlState = (cause: unknown): string | undefined => {
  if (typeof cause === "object" && cause !== null && "code" in cause && typeof cause.code === "string") {
    return /^[0-9A-Z]{5}$/.test(cause.code) ? cause.code : undefined
  }
  return undefined
}

const attempt = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, DatabaseError> =>
  Effect.tryPromise({
    try: run,
    catch: (cause) => new DatabaseError({ operation, code: sqlState(cause), cause })
  })

const copyStatement = (table: string, columns: ReadonlyArray<string>, source: string): string =>
  `COPY ${table} (${columns.map((c) => `"${c}"`).join(", ")}) FROM ${source}`

type PostgresConnection = postgres.Sql | postgres.ReservedSql

/**
 * `COPY … FROM STDIN` on postgres.js. A refusal the server sends while rows still flow destroys
 * the stream; one sent after the last row ends it with the error only with
 * patches/postgres+3.4.9.patch (upstream porsager/postgres#1183) — unpatched, `end` would hang.
 */
const copyStream = (conn: PostgresConnection, table: string, columns: ReadonlyArray<string>) =>
  Effect.map(attempt("copy", () => conn.unsafe(copyStatement(table, columns, "STDIN")).writable()), (writable): CopyStream => {
    let failure: unknown
    writable.on("error", (error) => (failure ??= error))
    const settle = (start: (done: (error?: unknown) => void) => void) =>
      attempt("copy", () =>
        new Promise<void>((resolve, reject) => {
          if (failure !== undefined) return reject(failure)
          start((error) => (error === undefined || error === null ? resolve() : reject(failure ?? error)))
        }))
    return {
      write: (data) => settle((done) => writable.write(data, (error) => done(error))),
      end: settle((done) => writable.end(done)),
      abort: Effect.sync(() => {
        if (!writable.writableFinished) writable.destroy(new Error("COPY abandoned"))
      })
    }
  })

const makePostgres = Effect.fnUntraced(function*(url: Redacted.Redacted<string>, max: number) {
  const sql = yield* Effect.acquireRelease(
    Effect.sync(() =>
      postgres(Redacted.value(url), {
        max,
        onnotice: () => {},
        // Dates and bigints stay strings: reports and tests compare exact values, not JS numbers.
        types: {},
        connection: { application_name: "loaders" }
      })
    ),
    (sql) => Effect.promise(() => sql.end({ timeout: 5 }))
  )
  yield* attempt("connect", () => sql`select 1`)

  const session = (conn: PostgresConnection): SqlSession => ({
    query: <T>(text: string, params: ReadonlyArray<SqlParam> = []) =>
      attempt("query", async () => Array.from(await conn.unsafe(text, [...params])) as Array<T>),
    execute: (text, params = []) => attempt("execute", async () => (await conn.unsafe(text, [...params])).count),
    exec: (text) => attempt("exec", () => conn.unsafe(text).simple()).pipe(Effect.asVoid),
    // Never left half-way: a connection inside an unfinished COPY would queue the ROLLBACK forever.
    copyIn: (table, columns, data) =>
      Effect.uninterruptible(Effect.flatMap(copyStream(conn, table, columns), (stream) => Effect.andThen(stream.write(data), stream.end))),
    copyStream: (table, columns) => copyStream(conn, table, columns)
  })

  return Database.of({
    kind: "postgres",
    ...session(sql),
    reserve: Effect.acquireRelease(
      attempt("reserve", () => sql.reserve()),
      (reserved) => Effect.sync(() => reserved.release())
    ).pipe(Effect.map(session))
  })
})

const makePGlite = Effect.fnUntraced(function*(dataDir: string | undefined) {
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
    query: <T>(text: string, params: ReadonlyArray<SqlParam> = []) =>
      attempt("query", async () => (await db.query<T>(text, [...params])).rows),
    execute: (text, params = []) =>
      attempt("execute", async () => (await db.query(text, [...params])).affectedRows ?? 0),
    exec: (text) => attempt("exec", () => db.exec(text)).pipe(Effect.asVoid),
    copyIn: (table, columns, data) =>
      attempt("copy", () => db.query(copyStatement(table, columns, "'/dev/blob'"), [], { blob: new Blob([data]) }))
        .pipe(Effect.asVoid),
    // PGlite copies from a whole blob: each write is a statement of its own.
    copyStream: (table, columns) =>
      Effect.succeed({ write: (data) => session.copyIn(table, columns, data), end: Effect.void, abort: Effect.void })
  }
  const shared: SqlSession = {
    query: (text, params) => lock.withPermit(session.query(text, params)),
    execute: (text, params) => lock.withPermit(session.execute(text, params)),
    exec: (text) => lock.withPermit(session.exec(text)),
    copyIn: (table, columns, data) => lock.withPermit(session.copyIn(table, columns, data)),
    copyStream: (table, columns) =>
      Effect.succeed({
        write: (data) => lock.withPermit(session.copyIn(table, columns, data)),
        end: Effect.void,
        abort: Effect.void
      })
  }

  return Database.of({
    kind: "pglite",
    ...shared,
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

/**
 * A cell in `COPY … FROM STDIN` text format: `\N` for null, backslash, tab and line breaks escaped.
 * The caller passes values already normalised for the column's type.
 */
export const copyCell = (cell: string | number | boolean | null | undefined): string =>
  cell === null || cell === undefined ? "\\N" : typeof cell === "string" ? escapeCopy(cell) : String(cell)

const needsEscape = /[\\\t\n\r]/

const escapeCopy = (value: string): string =>
  needsEscape.test(value)
    ? value.replace(/[\\\t\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\t" ? "\\t" : c === "\n" ? "\\n" : "\\r"))
    : value
