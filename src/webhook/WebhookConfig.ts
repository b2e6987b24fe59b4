import { Config, Context, Duration, Effect, Layer, Option, Redacted } from "effect"

/** How the webhook authenticates and bounds what it accepts. */
export interface WebhookSettings {
  /** Shared secret for direct and EventBridge deliveries; without it only SNS can post. */
  readonly secret: Redacted.Redacted<string> | undefined
  /** `bearer`: `Authorization: Bearer <secret>`; `hmac`: `X-Loaders-Signature: t=<unix>,v1=<hex>`. */
  readonly auth: "bearer" | "hmac"
  /** Largest body accepted (413 above). */
  readonly maxBodyBytes: number
  /** How far an HMAC timestamp may be from now. */
  readonly tolerance: Duration.Duration
  /** SNS topics whose messages are accepted and whose subscriptions are confirmed. */
  readonly snsTopics: ReadonlyArray<string>
  /** SNS signing certificates and subscription URLs must match this (AWS's own hosts by default). */
  readonly snsUrl: RegExp
  /** SNS messages whose signed `Timestamp` is older than this are refused as replays. */
  readonly snsMaxAge: Duration.Duration
}

const DEFAULT_SNS_URL = "^https://sns\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/"
// SNS retries an HTTP(S) delivery for up to an hour at most, keeping the original Timestamp.
const DEFAULT_SNS_MAX_AGE = Duration.hours(1)

export class WebhookConfig extends Context.Service<WebhookConfig, WebhookSettings>()("loaders/WebhookConfig") {
  /** From `LOADERS_WEBHOOK_*` and `LOADERS_SNS_*` environment variables (see README). */
  static readonly layer = Layer.effect(
    WebhookConfig,
    Effect.gen(function*() {
      const secret = yield* Config.option(Config.Redacted("LOADERS_WEBHOOK_SECRET"))
      return WebhookConfig.of({
        secret: Option.getOrUndefined(secret),
        auth: yield* Config.Literals(["bearer", "hmac"], "LOADERS_WEBHOOK_AUTH").pipe(Config.withDefault("bearer" as const)),
        maxBodyBytes: yield* Config.Int("LOADERS_WEBHOOK_MAX_BYTES").pipe(Config.withDefault(256 * 1024)),
        tolerance: yield* Config.Duration("LOADERS_WEBHOOK_TOLERANCE").pipe(Config.withDefault(Duration.minutes(5))),
        snsTopics: (yield* Config.String("LOADERS_SNS_TOPICS").pipe(Config.withDefault("")))
          .split(",")
          .map((arn) => arn.trim())
          .filter((arn) => arn.length > 0),
        snsUrl: new RegExp(yield* Config.String("LOADERS_SNS_URL_PATTERN").pipe(Config.withDefault(DEFAULT_SNS_URL))),
        snsMaxAge: yield* Config.Duration("LOADERS_SNS_MAX_AGE").pipe(Config.withDefault(DEFAULT_SNS_MAX_AGE))
      })
    })
  )

  static readonly layerWith = (settings: Partial<WebhookSettings>) =>
    Layer.succeed(WebhookConfig, {
      secret: undefined,
      auth: "bearer",
      maxBodyBytes: 256 * 1024,
      tolerance: Duration.minutes(5),
      snsTopics: [],
      snsUrl: new RegExp(DEFAULT_SNS_URL),
      snsMaxAge: DEFAULT_SNS_MAX_AGE,
      ...settings
    })
}
