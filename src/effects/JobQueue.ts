import { Context, Duration, Effect, Layer, Metric, Queue } from "effect"

/** Jobs waiting for a worker, and jobs being worked on (`loaders.queue.*` gauges). */
export const queueMetrics = {
  depth: Metric.gauge("loaders.queue.depth", { description: "Delivery jobs waiting for a worker" }),
  inFlight: Metric.gauge("loaders.queue.in_flight", { description: "Delivery jobs being processed" })
} as const

/** Work for a delivery folder: look at it, and process it if it is ready. */
export interface DeliveryJob {
  readonly bucket: string
  /** `incoming/<partner>/<delivery>/` */
  readonly prefix: string
  /** Tries so far, for jobs put back after a fault. */
  readonly attempt: number
  /** The span that asked for the job (the webhook request), to link the delivery's trace to it. */
  readonly origin?: { readonly traceId: string; readonly spanId: string }
}

/**
 * Where the webhook hands deliveries to workers. Jobs for the same folder are coalesced while they
 * wait, so a burst of events makes one job. The in-process layer runs worker fibers in this process;
 * a durable queue shared by several machines can be another layer of the same service.
 */
export class JobQueue extends Context.Service<JobQueue, {
  /** Queues a job, now or after `delay`; a job for a folder already waiting is dropped. */
  readonly enqueue: (job: DeliveryJob, options?: { readonly delay?: Duration.Input }) => Effect.Effect<void>
  /** Jobs waiting (not yet taken by a worker). */
  readonly depth: Effect.Effect<number>
  /** Jobs being worked on. */
  readonly inFlight: Effect.Effect<number>
}>()("loaders/JobQueue") {
  /**
   * `workers` fibers in this process run `handle` for each job. Closing the layer stops taking jobs
   * and interrupts those in flight, whose deliveries roll back and give their claim back.
   */
  static readonly layerInProcess = <R>(options: {
    readonly workers: number
    /** Gets the queue itself, to put a job back for later. */
    readonly handle: (job: DeliveryJob, queue: JobQueue["Service"]) => Effect.Effect<void, never, R>
  }) =>
    Layer.effect(
      JobQueue,
      Effect.gen(function*() {
        const queue = yield* Queue.unbounded<DeliveryJob>()
        const waiting = new Set<string>()
        let inFlight = 0
        const scope = yield* Effect.scope
        const keyOf = (job: DeliveryJob) => `${job.bucket}\u0000${job.prefix}`

        const gauges = Effect.suspend(() =>
          Effect.all([Metric.update(queueMetrics.depth, waiting.size), Metric.update(queueMetrics.inFlight, inFlight)])
        )

        const offer = (job: DeliveryJob) =>
          Effect.suspend(() => {
            if (waiting.has(keyOf(job))) return Effect.void
            waiting.add(keyOf(job))
            return Queue.offer(queue, job).pipe(Effect.andThen(gauges), Effect.asVoid)
          })

        const enqueue = (job: DeliveryJob, enqueueOptions: { readonly delay?: Duration.Input } = {}) =>
          enqueueOptions.delay === undefined
            ? offer(job)
            : Effect.sleep(enqueueOptions.delay).pipe(Effect.andThen(offer(job)), Effect.forkIn(scope), Effect.asVoid)

        const service = JobQueue.of({
          enqueue,
          // A job counts as waiting until a worker has started it (not merely taken it).
          depth: Effect.sync(() => waiting.size),
          inFlight: Effect.sync(() => inFlight)
        })

        const worker = Effect.gen(function*() {
          for (;;) {
            const job = yield* Queue.take(queue)
            waiting.delete(keyOf(job))
            inFlight++
            yield* gauges
            yield* options.handle(job, service).pipe(
              Effect.ensuring(Effect.sync(() => inFlight--).pipe(Effect.andThen(gauges)))
            )
          }
        })
        for (let i = 0; i < options.workers; i++) yield* Effect.forkIn(worker, scope)
        return service
      })
    )
}
