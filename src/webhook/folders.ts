import { type DeliveryKey, deliveryOfObject } from "../domain/DeliveryFolder.ts"
import { newerSequencer, type ObjectCreated, type ObjectEvents } from "./events.ts"

/** Remembered (key → newest sequencer) to drop repeated events; bounded, oldest forgotten first. */
const SEQUENCERS_KEPT = 10_000

/** What the created objects of one notification come to. */
export interface EventFolders {
  /** The delivery folders touched, each once, by prefix. */
  readonly deliveries: ReadonlyMap<string, DeliveryKey>
  /** Records that named a file of a delivery and were not a repeat. */
  readonly accepted: number
  /** Events acknowledged without work: not a creation, outside the incoming prefix, or a repeat. */
  readonly ignored: number
  /** Why each refused record was refused (another bucket, a key breaking the name rule). */
  readonly refused: ReadonlyArray<string>
  /** Whether every refusal was for another bucket (a sound event we refuse, not a bad one). */
  readonly onlyOtherBuckets: boolean
  /**
   * Remembers these events' sequencers, so that repeats of them are dropped from then on. Call it
   * once their folders are in the job queue: a repeat of an event whose job could not be written
   * must still count.
   */
  readonly remember: () => void
}

/**
 * Turns decoded S3 events into the delivery folders to hand to the workers, the same way for every
 * trigger (webhook, SQS): records naming another bucket than `bucket`, or a key breaking the name
 * rule, are refused; objects outside the incoming prefix (the loaders' own archive moves among
 * them) are ignored; an event whose sequencer is not newer than one already handed over for the
 * same key is a repeat (S3 delivers at least once) and ignored.
 */
export const makeEventFolders = (bucket: string, incomingPrefix: string) => {
  const sequencers = new Map<string, string>()
  const idOf = (event: ObjectCreated) => `${event.bucket}\u0000${event.key}`

  /** False when a newer or equal event for the same key was already handed over (or is in `batch`). */
  const fresh = (event: ObjectCreated, batch: ReadonlyMap<string, string> = new Map()): boolean => {
    const { sequencer } = event
    if (!sequencer) return true
    const id = idOf(event)
    return [sequencers.get(id), batch.get(id)].every((seen) => seen === undefined || newerSequencer(sequencer, seen))
  }

  const remember = (events: ReadonlyArray<ObjectCreated>) => {
    for (const event of events) {
      if (!event.sequencer || !fresh(event)) continue
      const id = idOf(event)
      sequencers.delete(id)
      sequencers.set(id, event.sequencer)
      if (sequencers.size > SEQUENCERS_KEPT) sequencers.delete(sequencers.keys().next().value!)
    }
  }

  return (events: ObjectEvents): EventFolders => {
    const deliveries = new Map<string, DeliveryKey>()
    const refused: Array<string> = []
    const handed: Array<ObjectCreated> = []
    const batch = new Map<string, string>()
    let otherBuckets = 0
    for (const event of events.created) {
      if (event.bucket !== bucket) {
        refused.push(
          `object key ${JSON.stringify(event.key)}: bucket ${JSON.stringify(event.bucket)} is refused; this service loads bucket "${bucket}" only`
        )
        otherBuckets++
        continue
      }
      const place = deliveryOfObject(bucket, event.key, incomingPrefix)
      if (place._tag === "Refused") refused.push(place.reason)
      if (place._tag !== "Delivery" || !fresh(event, batch)) continue
      if (event.sequencer) batch.set(idOf(event), event.sequencer)
      handed.push(event)
      deliveries.set(place.key.prefix, place.key)
    }
    return {
      deliveries,
      accepted: handed.length,
      ignored: events.ignored + events.created.length - handed.length - refused.length,
      refused,
      onlyOtherBuckets: otherBuckets === refused.length,
      remember: () => remember(handed)
    }
  }
}
