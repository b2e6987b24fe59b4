import { Clock, Config, Context, Effect, FiberSet, Layer } from "effect"
import { join, resolve } from "node:path"
import { type AuthContext, type Connection, Server } from "ssh2"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"
import type { JobQueue } from "../effects/JobQueue.ts"
import type { ObjectStore } from "../effects/ObjectStore.ts"
import { Partners } from "../effects/Partners.ts"
import type { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { fingerprint, hostKey, keyAccepted, parseKeys, SftpServerError } from "./keys.ts"
import { serveSftp } from "./session.ts"

/** Where the SFTP server listens and how to reach it (`LOADERS_SFTP_*`). */
export interface SftpSettings {
  readonly host: string
  /** 0: any free port (tests). */
  readonly port: number
  /** The host key's file, made on first start. */
  readonly hostKeyPath: string
}

/** Longest a connection may take to authenticate before it is closed. */
const LOGIN_GRACE_MS = 60_000
/**
 * A client that vanished without closing (its network gone) is found by keepalives: after about a
 * minute without answers its connection is closed, and its open uploads aborted.
 */
const KEEPALIVE = { keepaliveInterval: 15_000, keepaliveCountMax: 4 }

/** The default port: 22 needs root, and is the machine's own SSH. */
export const SFTP_PORT = 2222

/**
 * The SFTP ingestion server: partners log in with one of their `sshKeys` (username: the partner's
 * name) and see their own tree (`paths.ts`): uploads into `/incoming/<delivery>/` stream to the
 * bucket, `/success` and `/failure` read back the archive. Every closed upload hands its delivery
 * to the workers, as S3's object-created event would. Lives as long as the layer; closing it ends
 * every connection, and uploads still open are aborted.
 */
export class SftpServer extends Context.Service<SftpServer, {
  readonly host: string
  readonly port: number
  readonly hostKeyFingerprint: string
}>()("loaders/SftpServer") {
  static readonly layerWith = (settings: SftpSettings) => Layer.effect(SftpServer, make(settings))

  /**
   * From `LOADERS_SFTP_HOST` (127.0.0.1), `LOADERS_SFTP_PORT` (2222) and `LOADERS_SFTP_HOST_KEY`
   * (`sftp_host_ed25519_key` in `LOADERS_EMBEDDED_DIR`, `.loaders` by default).
   */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const port = yield* Config.Int("LOADERS_SFTP_PORT").pipe(Config.withDefault(SFTP_PORT))
      if (port < 0 || port > 65535) {
        return yield* new SftpServerError({ reason: `LOADERS_SFTP_PORT must be a port number (0 to 65535, 0: any free port), got ${port}` })
      }
      const embedded = yield* Config.String("LOADERS_EMBEDDED_DIR").pipe(Config.withDefault(".loaders"))
      return SftpServer.layerWith({
        host: yield* Config.String("LOADERS_SFTP_HOST").pipe(Config.withDefault("127.0.0.1")),
        port,
        hostKeyPath: resolve(
          yield* Config.String("LOADERS_SFTP_HOST_KEY").pipe(Config.withDefault(join(embedded, "sftp_host_ed25519_key")))
        )
      })
    })
  )
}

const make = Effect.fnUntraced(function*(settings: SftpSettings) {
  const partners = yield* Partners
  const key = yield* hostKey(settings.hostKeyPath)
  if (key.created) yield* Effect.logInfo(`SFTP host key made in ${settings.hostKeyPath} (${key.fingerprint})`)
  const fibers = yield* FiberSet.make()
  const run = yield* FiberSet.runtime(fibers)<ObjectStore | PipelineConfig | JobQueue>()
  const connections = new Set<Connection>()

  const refusedLogin = (partner: string, remote: string, reason: string) =>
    run(
      Effect.logWarning(`sftp refused login as ${JSON.stringify(partner)} from ${remote}: ${reason}`).pipe(
        Effect.withSpan("Sftp.refused", {
          attributes: { "loaders.partner": partner, "sftp.operation": "login", "net.peer.address": remote, "sftp.reason": reason }
        })
      )
    )

  const authenticate = (ctx: AuthContext, remote: string) => {
    if (ctx.method === "none") return ctx.reject(["publickey"])
    if (ctx.method !== "publickey") {
      refusedLogin(ctx.username, remote, `method ${ctx.method} is not accepted (public keys only)`)
      return ctx.reject(["publickey"])
    }
    // The user name becomes a folder name: one breaking the rule is no partner's, whatever the file says.
    const problem = nameProblem(ctx.username)
    if (problem) {
      refusedLogin(ctx.username, remote, `the user name is refused (${problem}); ${NAME_RULE}`)
      return ctx.reject(["publickey"])
    }
    const allowed = parseKeys(partners.get(ctx.username)?.sshKeys ?? [])
    if (keyAccepted(ctx, allowed)) return ctx.accept()
    refusedLogin(
      ctx.username,
      remote,
      allowed.length === 0
        ? "no partner of that name has SSH keys in the partners file"
        : `key ${ctx.key.algo} ${fingerprint(ctx.key.data)} is not one of the partner's sshKeys${ctx.signature ? " or its signature is wrong" : ""}`
    )
    ctx.reject(["publickey"])
  }

  const session = (sftp: Parameters<typeof serveSftp>[0], partner: string, remote: string) =>
    Effect.gen(function*() {
      const began = yield* Clock.currentTimeMillis
      const summary = yield* Effect.scoped(serveSftp(sftp, { partner, remote }))
      const seconds = ((yield* Clock.currentTimeMillis) - began) / 1000
      yield* Effect.annotateCurrentSpan({ "sftp.uploads": summary.uploads, "sftp.bytes": summary.bytes, "sftp.refusals": summary.refusals })
      yield* Effect.logInfo(
        `sftp session of ${partner} from ${remote} ended after ${seconds.toFixed(1)} s: ${summary.uploads} file(s) uploaded ` +
          `(${summary.bytes} bytes), ${summary.aborted} aborted, ${summary.refusals} refusal(s)`
      )
    }).pipe(Effect.withSpan("Sftp.session", { root: true, attributes: { "loaders.partner": partner, "net.peer.address": remote } }))

  const server = new Server({ hostKeys: [key.key], ident: "loaders", ...KEEPALIVE }, (client, info) => {
    const remote = `${info.ip}:${info.port}`
    let partner = ""
    connections.add(client)
    const grace = setTimeout(() => client.end(), LOGIN_GRACE_MS)
    client.on("authentication", (ctx) => {
      partner = ctx.username
      authenticate(ctx, remote)
    })
    client.on("ready", () => {
      clearTimeout(grace)
      client.on("session", (accept) => {
        const channel = accept()
        channel.on("sftp", (acceptSftp) => void run(session(acceptSftp(), partner, remote)))
      })
    })
    // A connection reset or a client speaking something else: its own problem, not the server's.
    client.on("error", (error) => void run(Effect.logDebug(`sftp connection from ${remote}: ${error.message}`)))
    client.on("close", () => {
      clearTimeout(grace)
      connections.delete(client)
    })
  })

  const address = yield* Effect.acquireRelease(
    Effect.callback<{ readonly port: number }, SftpServerError>((resume) => {
      server.once("error", (error: NodeJS.ErrnoException) =>
        resume(Effect.fail(
          new SftpServerError({
            reason: error.code === "EADDRINUSE"
              ? `LOADERS_SFTP_PORT=${settings.port}: the port is in use by another process (set another, 0: any free port)`
              : `cannot listen on ${settings.host}:${settings.port} (LOADERS_SFTP_HOST, LOADERS_SFTP_PORT): ${error.message}`
          })
        )))
      server.listen(settings.port, settings.host, () => {
        const bound = server.address()
        resume(Effect.succeed({ port: typeof bound === "object" && bound !== null ? bound.port : settings.port }))
      })
    }),
    () =>
      Effect.callback<void>((resume) => {
        for (const connection of connections) connection.end()
        server.close(() => resume(Effect.void))
      })
  )
  return SftpServer.of({ host: settings.host, port: address.port, hostKeyFingerprint: key.fingerprint })
})
