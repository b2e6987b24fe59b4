import { Duration } from "effect"
import type { JobQueueSettings } from "../../src/effects/pgboss/PgBossJobQueue.ts"

/** pg-boss settings for tests: fast retries and polls, so a test sees jobs through in seconds. */
export const fastJobQueue: JobQueueSettings = {
  attempts: 3,
  retryDelay: Duration.seconds(1),
  heartbeat: Duration.seconds(10),
  grace: Duration.seconds(2),
  poll: Duration.millis(500)
}
