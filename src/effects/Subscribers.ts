import { Config, Context, Effect, Layer, Option } from "effect"
import { type SubscriberSettings, SubscribersFile } from "../../schemas/SubscribersConfig.ts"
import { readSettingsFile } from "./settingsFile.ts"

/** A subscriber with its name. */
export interface Subscriber extends SubscriberSettings {
  readonly name: string
}

/** The internal systems told of every load, from `LOADERS_SUBSCRIBERS_FILE` (none without it). */
export class Subscribers extends Context.Service<Subscribers, { readonly all: ReadonlyArray<Subscriber> }>()("loaders/Subscribers") {
  static readonly layerWith = (settings: Readonly<Record<string, SubscriberSettings>>) =>
    Layer.succeed(Subscribers, { all: Object.entries(settings).map(([name, s]) => ({ name, ...s })) })

  /** Reads and validates the file once, at start. */
  static readonly layer = Layer.unwrap(
    Effect.gen(function*() {
      const path = yield* Config.option(Config.String("LOADERS_SUBSCRIBERS_FILE"))
      if (Option.isNone(path)) return Subscribers.layerWith({})
      return Subscribers.layerWith(yield* readSettingsFile("LOADERS_SUBSCRIBERS_FILE", path.value, SubscribersFile))
    })
  )
}
