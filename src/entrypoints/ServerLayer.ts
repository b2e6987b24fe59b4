import { Effect, Layer } from "effect"
import { JobQueue } from "../effects/JobQueue.ts"
import { deliveryJobAttempts, handleDeliveryJob } from "../pipeline/deliveryJob.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { Webhook } from "../webhook/Webhook.ts"
import { WebhookConfig } from "../webhook/WebhookConfig.ts"
import { AppLayer } from "./AppLayer.ts"

/** In-process workers taking delivery jobs, as many as `LOADERS_CONCURRENCY`, until the layer closes. */
const workers = Layer.effectDiscard(
  Effect.gen(function*() {
    const { concurrency } = yield* PipelineConfig
    const queue = yield* JobQueue
    yield* Effect.forkScoped(queue.take(handleDeliveryJob, { workers: concurrency, ...deliveryJobAttempts }))
  })
)

/**
 * Everything the HTTP server runs on: the pipeline's services from the environment, the webhook,
 * the job queue (in memory) and its workers in this process. Disposing it stops the workers;
 * deliveries in flight roll back and give their claim back for the next run.
 */
export const ServerLayer = Layer.mergeAll(Webhook.layer, workers).pipe(
  Layer.provideMerge(JobQueue.layerMemory),
  Layer.provideMerge(WebhookConfig.layer),
  Layer.provideMerge(AppLayer)
)
