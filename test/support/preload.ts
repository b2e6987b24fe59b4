// The suite's shared services start here, before any test and outside every test's time limit:
// Bun kills the processes a timed-out test spawned, so a PostgreSQL cluster or s3rver started
// lazily inside one test would die with it and fail every later test. They stop at the end of
// the run (the preload's `afterAll`).
import { afterAll, setDefaultTimeout } from "bun:test"
import { startCluster } from "./postgres.ts"
import { s3Server } from "./s3.ts"
import { stopAll } from "./services.ts"

// `bun test` does not read a timeout from bunfig.toml; end-to-end tests spawn Bun and Deno
// servers and load deliveries, which takes more than Bun's 5 s on a busy machine.
setDefaultTimeout(60_000)

await Promise.all([startCluster(), s3Server()])

afterAll(stopAll)
