// `npm run sftp`: partners deliver over SFTP into incoming/<partner>/<delivery>/, until SIGTERM or Ctrl-C.
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import * as PgBossJobQueue from "../effects/pgboss/PgBossJobQueue.ts"
import { SftpServer } from "../sftp/SftpServer.ts"
import { AppLayer } from "./AppLayer.ts"
import { COLLECT_AFTER, keepMemoryDown } from "./bunMemory.ts"
import { runMain } from "./runMain.ts"
import { startupProblem } from "./startupProblem.ts"
import { WorkersLayer } from "./Workers.ts"

const USAGE = `Usage: npm run sftp [-- --no-workers]

An SFTP server for partners: each logs in as its partner name with one of the public keys listed
in its "sshKeys" (LOADERS_PARTNERS_FILE) and sees its own tree: /incoming/<delivery>/ to upload
into (streamed to incoming/<partner>/<delivery>/ in the bucket; a file appears there only once
closed), /success and /failure to read its reports. Closing _manifest.json hands the delivery to
the workers at once; without a manifest it runs after LOADERS_QUIET_PERIOD.
Listens on LOADERS_SFTP_HOST:LOADERS_SFTP_PORT (default 127.0.0.1:2222) with the host key in
LOADERS_SFTP_HOST_KEY (default .loaders/sftp_host_ed25519_key, made on first start).
Runs workers too (LOADERS_WORKERS), as npm run serve does; --no-workers leaves the deliveries to
npm run worker processes on the same DATABASE_URL. Configuration: see README.md and .env.example.`

const args = process.argv.slice(2)
const unknown = args.filter((arg) => arg !== "--no-workers")
if (args.includes("-h") || args.includes("--help")) {
  console.log(USAGE)
} else if (unknown.length > 0) {
  console.error(`loaders sftp: unknown argument ${JSON.stringify(unknown[0])}\n\n${USAGE}`)
  process.exitCode = 2
} else {
  const announce = Layer.effectDiscard(
    Effect.gen(function*() {
      const server = yield* SftpServer
      yield* Effect.sync(() =>
        console.log(`loaders sftp listening on ${server.host}:${server.port} (host key ${server.hostKeyFingerprint})`)
      )
    })
  )
  const program = Layer.launch(
    Layer.mergeAll(announce, args.includes("--no-workers") ? Layer.empty : WorkersLayer).pipe(
      Layer.provideMerge(SftpServer.layer),
      Layer.provideMerge(PgBossJobQueue.layer),
      Layer.provideMerge(AppLayer)
    )
  ).pipe(
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => {
        console.error(`loaders sftp could not start: ${startupProblem(Cause.squash(cause))}`)
        process.exitCode = 2
      })
    )
  )
  keepMemoryDown(COLLECT_AFTER.uploads)
  runMain(program, {
    disableErrorReporting: true,
    // Stopped by SIGTERM or Ctrl-C is how a server ends when all went well.
    teardown: (exit, onExit) =>
      Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  })
}
