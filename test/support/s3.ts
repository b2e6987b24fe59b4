import { CreateBucketCommand, S3Client } from "@aws-sdk/client-s3"
import { Effect, Exit, Scope } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { type EmbeddedS3, startEmbeddedS3 } from "../../src/effects/EmbeddedS3.ts"
import { ObjectStore } from "../../src/effects/ObjectStore.ts"
import { onStop } from "./services.ts"
import { sharedServices, uniqueSuffix } from "./sharedServices.ts"

let server: Promise<EmbeddedS3> | undefined
let bucketCount = 0

/** One real s3rver for the whole run: `npm test`'s, or started by the preload and stopped at its end. */
export const s3Server = (): Promise<EmbeddedS3> => {
  const shared = sharedServices()?.s3
  if (shared && server === undefined) {
    // Its object events reach only the process that started it (no test here listens to them).
    server = Promise.resolve({ ...shared, onEvent: () => () => undefined })
  }
  server ??= (async () => {
    const directory = mkdtempSync(join(tmpdir(), "loaders-s3rver-"))
    const scope = Scope.makeUnsafe()
    const s3 = await Effect.runPromise(Scope.provide(startEmbeddedS3({ directory, buckets: [] }), scope))
    onStop(async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      rmSync(directory, { recursive: true, force: true })
    })
    return s3
  })()
  return server
}

/** A raw SDK client on the test server, for setup and assertions outside our own code. */
export const rawClient = (s3: EmbeddedS3): S3Client =>
  new S3Client({
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: s3.credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED"
  })

/** A fresh, empty bucket on the shared server, with an `ObjectStore` layer and a raw client for it. */
export const freshBucket = async (endpoint?: string) => {
  const s3 = await s3Server()
  const bucket = `test-${uniqueSuffix()}-${++bucketCount}`.toLowerCase().replaceAll("_", "-")
  const client = rawClient(s3)
  await client.send(new CreateBucketCommand({ Bucket: bucket }))
  const layer = ObjectStore.layerWith({
    bucket,
    endpoint: endpoint ?? s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: s3.credentials
  })
  return { s3, bucket, client, layer } as const
}
