import { Config, Context, Duration, Effect, Layer, Option } from "effect"
import { createHash, randomBytes } from "node:crypto"
import { Database, type DatabaseError, migrate, SCHEMA } from "../effects/Database.ts"

/** Who a portal session belongs to. */
export interface PortalSession {
  readonly partner: string
  readonly email: string
}

/** What a sign-in link is worth now: a link that is not `valid` opens no session. */
export type LinkState = "valid" | "expired" | "used" | "unknown"

/** A session just opened from a link: `token` goes into the cookie and nowhere else. */
export interface Opened extends PortalSession {
  readonly token: string
}

/** How long links and sessions last, and the address the links in emails point to. */
export interface PortalSettings {
  readonly linkTtl: Duration.Duration
  readonly sessionTtl: Duration.Duration
  /** Sign-in links one address may be sent in an hour (5 by default). */
  readonly linksPerHour: number
  /**
   * The portal's public origin (`https://loaders.example.com`) for the links in emails. Without it
   * the request's own origin is used, which a forged `Host` header could change: set it in production.
   */
  readonly publicUrl: string | undefined
}

/**
 * Sign-in by one-time link for the partner portal: links and sessions are random 256-bit tokens
 * kept in the database by their SHA-256 only (a database dump opens no session), with an expiry
 * checked by the database's clock; a link opens one session, once.
 */
export class PortalAuth extends Context.Service<PortalAuth, {
  readonly settings: PortalSettings
  /**
   * A new link token for `email` of `partner` (expired links and sessions are swept on the way), or
   * undefined when that address already got `linksPerHour` links in the last hour: the sign-in
   * form cannot be used to flood a partner's inbox.
   */
  readonly issueLink: (session: PortalSession) => Effect.Effect<string | undefined, DatabaseError>
  /** Where a link stands, without using it (so a mail scanner opening it spends nothing). */
  readonly linkState: (token: string) => Effect.Effect<LinkState, DatabaseError>
  /** Uses the link and opens a session, or says why not. */
  readonly redeem: (token: string) => Effect.Effect<Opened | Exclude<LinkState, "valid">, DatabaseError>
  /** The live session a cookie holds, if any. */
  readonly session: (token: string) => Effect.Effect<PortalSession | undefined, DatabaseError>
  readonly signOut: (token: string) => Effect.Effect<void, DatabaseError>
}>()("loaders/PortalAuth") {
  static readonly layerWith = (settings: PortalSettings) => Layer.effect(PortalAuth, makePortalAuth(settings))

  /**
   * From the environment: `LOADERS_PORTAL_URL` (the public origin for links in emails),
   * `LOADERS_PORTAL_LINK_MINUTES` (default 15), `LOADERS_PORTAL_SESSION_HOURS` (default 8).
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const publicUrl = yield* Config.option(Config.URL("LOADERS_PORTAL_URL"))
      const linkMinutes = yield* Config.Int("LOADERS_PORTAL_LINK_MINUTES").pipe(Config.withDefault(15))
      const sessionHours = yield* Config.Int("LOADERS_PORTAL_SESSION_HOURS").pipe(Config.withDefault(8))
      return PortalAuth.layerWith({
        linkTtl: Duration.minutes(linkMinutes),
        sessionTtl: Duration.hours(sessionHours),
        linksPerHour: 5,
        publicUrl: Option.getOrUndefined(Option.map(publicUrl, (url) => url.origin))
      })
    })
  )
}

const MIGRATION = [
  `CREATE SCHEMA IF NOT EXISTS ${SCHEMA};
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.portal_links (
    hash text PRIMARY KEY,
    partner text NOT NULL,
    email text NOT NULL,
    expires_at timestamptz NOT NULL,
    used_at timestamptz
  );
  CREATE TABLE IF NOT EXISTS ${SCHEMA}.portal_sessions (
    hash text PRIMARY KEY,
    partner text NOT NULL,
    email text NOT NULL,
    expires_at timestamptz NOT NULL
  )`
]

const newToken = () => randomBytes(32).toString("base64url")
const hashOf = (token: string) => createHash("sha256").update(token, "utf8").digest("hex")
const seconds = (duration: Duration.Duration) => Math.round(Duration.toMillis(duration) / 1000)

const makePortalAuth = Effect.fnUntraced(function*(settings: PortalSettings) {
  const db = yield* Database
  yield* migrate(db, MIGRATION)

  const linkState = (token: string) =>
    db.query<{ used: boolean; expired: boolean }>(
      `SELECT used_at IS NOT NULL AS used, expires_at <= now() AS expired FROM ${SCHEMA}.portal_links WHERE hash = $1`,
      [hashOf(token)]
    ).pipe(Effect.map(([row]): LinkState => (row === undefined ? "unknown" : row.used ? "used" : row.expired ? "expired" : "valid")))

  return PortalAuth.of({
    settings,
    issueLink: Effect.fn("PortalAuth.issueLink")(function*({ partner, email }: PortalSession) {
      yield* db.execute(`DELETE FROM ${SCHEMA}.portal_links WHERE expires_at < now() - interval '1 day'`)
      yield* db.execute(`DELETE FROM ${SCHEMA}.portal_sessions WHERE expires_at < now()`)
      const [recent] = yield* db.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM ${SCHEMA}.portal_links WHERE email = $1 AND expires_at > now() - interval '1 hour' - make_interval(secs => $2)`,
        [email, seconds(settings.linkTtl)]
      )
      if ((recent?.n ?? 0) >= settings.linksPerHour) return undefined
      const token = newToken()
      yield* db.execute(
        `INSERT INTO ${SCHEMA}.portal_links (hash, partner, email, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
        [hashOf(token), partner, email, seconds(settings.linkTtl)]
      )
      return token
    }),
    linkState,
    redeem: Effect.fn("PortalAuth.redeem")(function*(token: string) {
      // One UPDATE decides: of two clicks at once, one gets the row and the other finds it used.
      const [link] = yield* db.query<{ partner: string; email: string }>(
        `UPDATE ${SCHEMA}.portal_links SET used_at = now() WHERE hash = $1 AND used_at IS NULL AND expires_at > now() RETURNING partner, email`,
        [hashOf(token)]
      )
      if (link === undefined) {
        const state = yield* linkState(token)
        return state === "valid" ? "used" : state
      }
      const session = newToken()
      yield* db.execute(
        `INSERT INTO ${SCHEMA}.portal_sessions (hash, partner, email, expires_at) VALUES ($1, $2, $3, now() + make_interval(secs => $4))`,
        [hashOf(session), link.partner, link.email, seconds(settings.sessionTtl)]
      )
      return { token: session, partner: link.partner, email: link.email }
    }),
    session: (token) =>
      db.query<PortalSession>(
        `SELECT partner, email FROM ${SCHEMA}.portal_sessions WHERE hash = $1 AND expires_at > now()`,
        [hashOf(token)]
      ).pipe(Effect.map(([row]) => row)),
    signOut: (token) => db.execute(`DELETE FROM ${SCHEMA}.portal_sessions WHERE hash = $1`, [hashOf(token)]).pipe(Effect.asVoid)
  })
})
