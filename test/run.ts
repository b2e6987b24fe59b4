// `npm test`: starts the suite's PostgreSQL cluster, s3rver and PGlite template once, then runs
// `bun test` in two processes against them (slowest files first, from test/timings.json) and stops
// them when it ends. Extra arguments go to `bun test` (a file, `-t <name>`, `--update-timings`).
import { spawn } from "node:child_process"
import { preparePGliteTemplate } from "./support/pglite.ts"
import { startCluster } from "./support/postgres.ts"
import { s3Server } from "./support/s3.ts"
import { stopAll } from "./support/services.ts"
import { SHARED_SERVICES, type SharedServices } from "./support/sharedServices.ts"

const [cluster, s3, pgliteTemplate] = await Promise.all([startCluster(), s3Server(), preparePGliteTemplate()])
const services: SharedServices = {
  postgresPort: cluster.port,
  s3: { endpoint: s3.endpoint, port: s3.port, credentials: s3.credentials },
  pgliteTemplate
}
const child = spawn(
  process.execPath,
  ["test", "--timeout", "60000", "--parallel=2", "--timings=test/timings.json", ...process.argv.slice(2)],
  { stdio: "inherit", env: { ...process.env, [SHARED_SERVICES]: JSON.stringify(services) } }
)
for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal))
const code = await new Promise<number>((resolve) => child.once("exit", (code, signal) => resolve(code ?? (signal ? 1 : 0))))
await stopAll()
process.exit(code)
