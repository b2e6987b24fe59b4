import { Effect, Layer } from "effect"
import { JobQueue } from "../effects/JobQueue.ts"
import { handleDeliveryJob } from "../pipeline/deliveryJob.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { Webhook } from "../webhook/Webhook.ts"
import { WebhookConfig } from "../webhook/WebhookConfig.ts"
import { AppLayer } from "./AppLayer.ts"

/** In-process workers taking delivery jobs, as many as `LOADERS_CONCURRENCY`. */
const workers = Layer.unwrap(
  Effect.gen(function*() {
    const { concurrency } = yield* PipelineConfig
    return JobQueue.layerInProcess({ workers: concurrency, handle: handleDeliveryJob })
  })
)

/**
 * Everything the HTTP server runs on: the pipeline's services from the environment, the webhook,
 * and the job queue with its workers in this process. Disposing it stops the workers; deliveries
 * in flight roll back and give their claim back for the next run.
 */
export const ServerLayer = Webhook.layer.pipe(
  Layer.provideMerge(workers),
  Layer.provideMerge(WebhookConfig.layer),
  Layer.provideMerge(AppLayer)
)
