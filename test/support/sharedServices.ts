/**
 * What `npm test` (test/run.ts) started once for the whole run, passed to every test process in
 * `LOADERS_TEST_SERVICES`. With `--parallel`, Bun evaluates the preload again for every test file:
 * starting a PostgreSQL cluster, an s3rver and a PGlite template there cost seconds of CPU per file
 * (6 small files: 6.8 s in one process, 25 s in two). Absent when a file is run on its own with
 * `bun test <file>`: the preload then starts its own.
 */
export interface SharedServices {
  readonly postgresPort: number
  readonly s3: {
    readonly endpoint: string
    readonly port: number
    readonly credentials: { readonly accessKeyId: string; readonly secretAccessKey: string }
  }
  readonly pgliteTemplate: string
}

export const SHARED_SERVICES = "LOADERS_TEST_SERVICES"

export const sharedServices = (): SharedServices | undefined => {
  const value = process.env[SHARED_SERVICES]
  return value ? (JSON.parse(value) as SharedServices) : undefined
}

/** A name part no other test process of the run picks (they share the cluster and the s3rver). */
export const uniqueSuffix = (): string => `${process.pid}_${crypto.randomUUID().slice(0, 8)}`
