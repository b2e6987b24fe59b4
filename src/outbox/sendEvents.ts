import { Config, Duration, Effect, Result } from "effect"
import { type Claimed, Outbox, type StoredEvent } from "../effects/Outbox.ts"
import { postSigned } from "../effects/signedPost.ts"
import { type Subscriber, Subscribers } from "../effects/Subscribers.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"

/** How events are sent (`LOADERS_EVENTS_*`). */
export interface SendSettings {
  /** How long a subscriber has to answer one event. */
  readonly timeout: Duration.Duration
  /** The wait after a partner's first failed attempt, doubled after each next one … */
  readonly retryBase: Duration.Duration
  /** … up to this: a subscriber back from an outage gets its events within this long. */
  readonly retryMax: Duration.Duration
  /** Pause between two passes over the subscribers. */
  readonly interval: Duration.Duration
  /** How long an event every subscriber has received stays in the outbox. */
  readonly retention: Duration.Duration
}

export const sendSettings: Config.Config<SendSettings> = Config.all({
  timeout: Config.Duration("LOADERS_EVENTS_TIMEOUT").pipe(Config.withDefault(Duration.seconds(10))),
  retryBase: Config.Duration("LOADERS_EVENTS_RETRY_BASE").pipe(Config.withDefault(Duration.seconds(1))),
  retryMax: Config.Duration("LOADERS_EVENTS_RETRY_MAX").pipe(Config.withDefault(Duration.minutes(1))),
  interval: Config.Duration("LOADERS_EVENTS_INTERVAL").pipe(Config.withDefault(Duration.seconds(1))),
  retention: Config.Duration("LOADERS_EVENTS_RETENTION").pipe(Config.withDefault(Duration.days(30)))
})

/** Events read per claim of a partner's stream. */
const CLAIM_EVENTS = 100

const wants = (subscriber: Subscriber, event: StoredEvent): boolean => {
  const dataset = (event.payload as { readonly dataset?: unknown }).dataset
  return (subscriber.partners == null || subscriber.partners.includes(event.partner)) &&
    (subscriber.datasets == null || (typeof dataset === "string" && subscriber.datasets.includes(dataset)))
}

/** `retryBase` doubled per earlier failure, at most `retryMax`. */
export const retryDelay = (settings: SendSettings, attempts: number): Duration.Duration =>
  Duration.min(Duration.times(settings.retryBase, 2 ** Math.min(attempts, 30)), settings.retryMax)

/** Sends a claimed stream's events in order until one fails; answers how many were sent. */
const sendClaimed = (subscriber: Subscriber, claimed: Claimed, settings: SendSettings) =>
  Effect.gen(function*() {
    const outbox = yield* Outbox
    const { owner } = yield* PipelineConfig
    let sent = 0
    for (const event of claimed.events) {
      if (wants(subscriber, event)) {
        const posted = yield* Effect.result(
          postSigned(subscriber.url, subscriber.secret, JSON.stringify(event.payload), {
            idempotencyKey: event.id,
            headers: { "x-loaders-event": event.type },
            timeout: settings.timeout
          })
        )
        if (Result.isFailure(posted)) {
          const retryIn = retryDelay(settings, claimed.attempts)
          yield* Effect.logWarning(
            `event ${event.id} to subscriber "${subscriber.name}" (${subscriber.url}) failed: ${posted.failure.reason}; ` +
              `${claimed.partner}'s events wait ${Duration.format(retryIn)} (attempt ${claimed.attempts + 1})`
          )
          yield* outbox.failed(claimed, owner, posted.failure.reason, retryIn)
          return sent
        }
        sent += 1
      }
      yield* outbox.delivered(claimed, owner, event.seq)
    }
    yield* outbox.release(claimed, owner)
    return sent
  })

/**
 * One pass over every subscriber: each partner's events due, in order, until the partner has none
 * left or one fails (its events then wait, with a growing delay). Any number of processes may run
 * passes at once: a partner's events are leased to one of them at a time. Answers the events sent.
 */
export const sendDueEvents = Effect.fn("sendDueEvents")(function*(settings: SendSettings) {
  const outbox = yield* Outbox
  const { all } = yield* Subscribers
  const { owner } = yield* PipelineConfig
  let sent = 0
  for (const subscriber of all) {
    for (;;) {
      const claimed = yield* outbox.claim(subscriber.name, owner, CLAIM_EVENTS)
      if (claimed === undefined) break
      sent += yield* sendClaimed(subscriber, claimed, settings)
    }
  }
  return sent
})

/**
 * Deletes the events older than the retention that every subscriber of the file has received: the
 * outbox keeps what someone still waits for, and, for as long as the retention, what a subscriber
 * added later would start from. Answers how many went.
 */
export const pruneDeliveredEvents = Effect.fn("pruneDeliveredEvents")(function*(settings: SendSettings) {
  const outbox = yield* Outbox
  const { all } = yield* Subscribers
  const pruned = yield* outbox.prune(all.map((subscriber) => subscriber.name), settings.retention)
  if (pruned > 0) {
    yield* Effect.logInfo(`events: ${pruned} delivered more than ${Duration.format(settings.retention)} ago deleted from the outbox (LOADERS_EVENTS_RETENTION)`)
  }
  return pruned
})
