import { S3Store } from "@tus/s3-store"
import { Server } from "@tus/server"
import type { S3Settings } from "../effects/ObjectStore.ts"
import { tusInfoPrefix } from "./deliveries.ts"

/**
 * tus's S3 store, with its own objects (`<id>.info`, the `<id>.part` of a chunk smaller than a
 * part) kept under the staging prefix instead of beside the upload: the upload's key is a file of a
 * delivery folder, where anything else would be taken for a file of the delivery.
 */
class DeliveryS3Store extends S3Store {
  constructor(options: ConstructorParameters<typeof S3Store>[0], private readonly statePrefix: string) {
    super(options)
  }

  protected override infoKey(id: string): string {
    return `${this.statePrefix}${id}.info`
  }

  protected override partKey(id: string, isIncomplete = false): string {
    return isIncomplete ? `${this.statePrefix}${id}.part` : id
  }
}

/**
 * An upload's id is its object key, `incoming/<partner>/<delivery>/<file>`; its URL carries the
 * part below the incoming prefix in base64url, one path segment whatever the names hold.
 */
export const uploadIdCodec = (incomingPrefix: string) => ({
  toUrl: (id: string) => Buffer.from(id.slice(incomingPrefix.length), "utf8").toString("base64url"),
  /** The key a URL segment names, or undefined when it is not one we made. */
  fromUrl: (segment: string): string | undefined => {
    if (!/^[A-Za-z0-9_-]+$/.test(segment)) return undefined
    return incomingPrefix + Buffer.from(segment, "base64url").toString("utf8")
  }
})

/** The tus metadata of a creation request (`Upload-Metadata: key base64, …`); undefined when malformed. */
export const tusMetadata = (header: string | null): Record<string, string> | undefined => {
  const metadata: Record<string, string> = {}
  for (const pair of (header ?? "").split(",").map((p) => p.trim()).filter((p) => p !== "")) {
    const [key, value = "", ...rest] = pair.split(" ")
    if (key === undefined || rest.length > 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) return undefined
    metadata[key] = Buffer.from(value, "base64").toString("utf8")
  }
  return metadata
}

/**
 * The tus server over the delivery bucket. Authentication, names, sizes and the delivery's state
 * are checked by our own middleware before a request reaches it (a refusal thrown inside tus's
 * hooks comes out as 500); `keyOf` turns the checked creation request into the upload's key.
 */
export const makeTusServer = (options: {
  /** Where its uploads are served: `POST <path>`, then `HEAD`/`PATCH <path>/{id}`. */
  readonly path: string
  readonly s3: S3Settings
  readonly incomingPrefix: string
  readonly stagingPrefix: string
  readonly maxFileBytes: number
  readonly keyOf: (request: Request) => string
}) => {
  const codec = uploadIdCodec(options.incomingPrefix)
  const datastore = new DeliveryS3Store(
    {
      s3ClientConfig: {
        bucket: options.s3.bucket,
        region: options.s3.region ?? "us-east-1",
        ...(options.s3.endpoint ? { endpoint: options.s3.endpoint } : {}),
        forcePathStyle: options.s3.forcePathStyle ?? options.s3.endpoint !== undefined,
        ...(options.s3.credentials ? { credentials: options.s3.credentials } : {}),
        // As for our own client: streamed bodies sent aws-chunked are stored verbatim by some stores.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED"
      },
      // Tags mark expired uploads for a bucket lifecycle rule; not every S3-compatible store has them.
      useTags: false
    },
    tusInfoPrefix(options.stagingPrefix)
  )
  return new Server({
    path: options.path,
    datastore,
    maxSize: options.maxFileBytes,
    respectForwardedHeaders: false,
    namingFunction: (request) => options.keyOf(request),
    generateUrl: (_request, { proto, host, path, id }) => `${proto}://${host}${path}/${codec.toUrl(id)}`,
    getFileIdFromRequest: (_request, lastPath) => (lastPath === undefined ? undefined : codec.fromUrl(lastPath))
  })
}
