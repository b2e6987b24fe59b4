import { Cause, Duration, Effect, Layer } from "effect"
import { Subscribers } from "../effects/Subscribers.ts"
import { pruneDeliveredEvents, sendDueEvents, sendSettings } from "../outbox/sendEvents.ts"

const PRUNE_EVERY = Duration.hours(1)

/**
 * Sends the outbox's events to the subscribers of `LOADERS_SUBSCRIBERS_FILE` for as long as the
 * layer lives, where workers run (`serve`, `npm run worker`): a pass every `LOADERS_EVENTS_INTERVAL`.
 * A pass that fails (the database down) is logged, and the next comes an interval later. Once an
 * hour, events past `LOADERS_EVENTS_RETENTION` that every subscriber received are deleted.
 */
export const EventsLayer = Layer.effectDiscard(
  Effect.gen(function*() {
    const { all } = yield* Subscribers
    const settings = yield* sendSettings
    // Old events every subscriber has received go, once an hour (with no subscriber, all old ones).
    const prune = pruneDeliveredEvents(settings).pipe(
      Effect.catchCause((cause) => Effect.logWarning(`pruning the outbox failed: ${Cause.squash(cause)}; trying again in an hour`))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(prune, Effect.sleep(PRUNE_EVERY))))
    if (all.length === 0) {
      yield* Effect.logInfo(
        `events: no subscribers (LOADERS_SUBSCRIBERS_FILE): delivery.loaded events stay in the outbox for ${Duration.format(settings.retention)}`
      )
      return
    }
    yield* Effect.logInfo(
      `events: delivery.loaded to ${all.map((s) => `"${s.name}"`).join(", ")}, checked every ${Duration.format(settings.interval)}`
    )
    const pass = sendDueEvents(settings).pipe(
      Effect.catchCause((cause) => Effect.logWarning(`sending events failed: ${Cause.squash(cause)}; trying again in ${Duration.format(settings.interval)}`))
    )
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(pass, Effect.sleep(settings.interval))))
  })
)
