// `npm run worker`: takes delivery jobs from the queue in the database until SIGTERM or Ctrl-C, on
// any number of machines at once; `serve --no-workers` then only answers webhooks.
import { Cause, Effect, Exit, Layer, Runtime } from "effect"
import * as PgBossJobQueue from "../effects/pgboss/PgBossJobQueue.ts"
import * as SqsEvents from "../sqs/SqsEvents.ts"
import { AppLayer } from "./AppLayer.ts"
import { MetricsListenerLayer } from "./metrics.ts"
import { QueueMetricsLayer } from "./QueueMetrics.ts"
import { COLLECT_AFTER, keepMemoryDown } from "./bunMemory.ts"
import { runMain } from "./runMain.ts"
import { startupProblem } from "./startupProblem.ts"
import { runWorkers } from "./Workers.ts"

const USAGE = `Usage: npm run worker

Takes delivery jobs from the job queue (pg-boss, schema loaders_jobs of DATABASE_URL) and processes
them, LOADERS_WORKERS at once (default 2), at most LOADERS_PARTNER_CONCURRENCY (default 2) of one
partner across every worker. Run as many as needed, on any machines, against one PostgreSQL; the
webhook (npm run serve -- --no-workers), SQS, the reconciliation scan and batch --enqueue fill the queue.
The reconciliation scan (every LOADERS_RECONCILE_INTERVAL, default 5 minutes; off or 0 turns it off)
lists the incoming prefix once per interval across all processes and queues ready folders that no
job stands for (their S3 event was lost). With LOADERS_SQS_QUEUE_URL set, it also long-polls that
SQS queue for S3 events and turns them into jobs. With LOADERS_METRICS_PORT set, it answers
GET /metrics (Prometheus; LOADERS_METRICS_TOKEN to require a bearer token) on HOST:LOADERS_METRICS_PORT.
SIGTERM or Ctrl-C: deliveries in flight get LOADERS_STOP_GRACE (default 20 s) to finish, then roll back
and go back to the queue. Configuration: see README.md and .env.example.`

const args = process.argv.slice(2)
if (args.includes("-h") || args.includes("--help")) {
  console.log(USAGE)
} else if (args.length > 0) {
  console.error(`loaders worker: unknown argument ${JSON.stringify(args[0])}\n\n${USAGE}`)
  process.exitCode = 2
} else {
  const program = runWorkers.pipe(
    // The queue's gauges are kept by every worker process too: one may run without any `serve`.
    Effect.provide(
      Layer.mergeAll(QueueMetricsLayer, SqsEvents.layerConfig, MetricsListenerLayer).pipe(Layer.provideMerge(PgBossJobQueue.layer), Layer.provideMerge(AppLayer))
    ),
    Effect.catchCause((cause) =>
      Cause.hasInterruptsOnly(cause) ? Effect.void : Effect.sync(() => {
        console.error(`loaders worker could not run: ${startupProblem(Cause.squash(cause))}`)
        process.exitCode = 2
      })
    )
  )
  keepMemoryDown(COLLECT_AFTER.deliveries)
  runMain(program, {
    disableErrorReporting: true,
    // Stopped by SIGTERM or Ctrl-C is how a worker ends when all went well: exit 0, not 130, so a
    // supervisor (systemd, an orchestrator) does not count a deploy as a crash.
    teardown: (exit, onExit) =>
      Exit.isFailure(exit) && Cause.hasInterruptsOnly(exit.cause) ? onExit(0) : Runtime.defaultTeardown(exit, onExit)
  })
}
