import { Config, Context, Duration, Effect, Layer, Schema } from "effect"

/** The HTTP API's limits, read once from the environment (README, "Delivering by API"). */
export interface ApiSettings {
  /** The largest file a partner may send, by any route (`LOADERS_API_MAX_FILE_SIZE`, bytes). */
  readonly maxFileBytes: number
  /**
   * Files larger than this get presigned multipart uploads in parts of this size (S3 takes at most
   * 10,000 parts, so larger files get larger parts); smaller ones one presigned PUT.
   */
  readonly partBytes: number
  /** How long presigned URLs stay valid (`LOADERS_API_URL_EXPIRY`). */
  readonly urlExpiry: Duration.Duration
  /** Requests one partner may make per minute, on each process (`LOADERS_API_RATE_LIMIT`). */
  readonly ratePerMinute: number
}

/** The largest JSON request body (opening a delivery, with its manifest), as the pipeline's manifest bound. */
export const MAX_JSON_BYTES = 1024 * 1024

/** S3's own bounds on multipart uploads. */
export const S3_MIN_PART_BYTES = 5 * 1024 * 1024
export const S3_MAX_PARTS = 10_000

const DEFAULTS: ApiSettings = {
  maxFileBytes: 50 * 1024 ** 3,
  partBytes: 64 * 1024 * 1024,
  urlExpiry: Duration.hours(1),
  ratePerMinute: 600
}

const positive = (name: string, fallback: number) =>
  Config.schema(Schema.Int.check(Schema.isGreaterThan(0)), name).pipe(Config.withDefault(fallback))

/** The HTTP API's limits. */
export class ApiConfig extends Context.Service<ApiConfig, ApiSettings>()("loaders/ApiConfig") {
  /** From `LOADERS_API_MAX_FILE_SIZE`, `LOADERS_API_PART_SIZE`, `LOADERS_API_URL_EXPIRY`, `LOADERS_API_RATE_LIMIT`. */
  static readonly layer = Layer.effect(
    ApiConfig,
    Effect.gen(function*() {
      const partBytes = yield* positive("LOADERS_API_PART_SIZE", DEFAULTS.partBytes)
      return ApiConfig.of({
        maxFileBytes: yield* positive("LOADERS_API_MAX_FILE_SIZE", DEFAULTS.maxFileBytes),
        partBytes: Math.max(partBytes, S3_MIN_PART_BYTES),
        urlExpiry: yield* Config.Duration("LOADERS_API_URL_EXPIRY").pipe(Config.withDefault(DEFAULTS.urlExpiry)),
        ratePerMinute: yield* positive("LOADERS_API_RATE_LIMIT", DEFAULTS.ratePerMinute)
      })
    })
  )

  /** Explicit limits (tests), with the environment's defaults. */
  static readonly layerWith = (settings: Partial<ApiSettings>) => Layer.succeed(ApiConfig, { ...DEFAULTS, ...settings })
}
