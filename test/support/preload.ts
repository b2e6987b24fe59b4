// The suite's shared services start here, before any test and outside every test's time limit:
// Bun kills the processes a timed-out test spawned, so a PostgreSQL cluster or s3rver started
// lazily inside one test would die with it and fail every later test. They stop at the end of
// the run (the preload's `afterAll`).
import { afterAll } from "bun:test"
import { preparePGliteTemplate } from "./pglite.ts"
import { startCluster } from "./postgres.ts"
import { s3Server } from "./s3.ts"
import { stopAll } from "./services.ts"

await Promise.all([startCluster(), s3Server(), preparePGliteTemplate()])

afterAll(stopAll)
