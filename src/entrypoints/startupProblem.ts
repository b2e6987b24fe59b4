import { Config, SchemaIssue } from "effect"
import { DatabaseError } from "../effects/Database.ts"
import { ObjectStoreError } from "../effects/ObjectStore.ts"
import { PartnersFileError } from "../effects/Partners.ts"

/** A database URL as it may be shown: without its password. */
export const hidePassword = (url: string) => url.replace(/\/\/[^@/]*@/, "//***@")

const oneLine = (text: string) => text.replace(/\s*\n\s*/g, " ").trim()

const formatIssue = SchemaIssue.makeFormatterStandardSchemaV1()

const configProblem = (error: Config.ConfigError): string => {
  if (error.cause._tag !== "SchemaError") return oneLine(error.cause.message)
  return formatIssue(error.cause.issue).issues.map(({ path, message }) => {
    const name = (path ?? []).map(String).join(".")
    const value = process.env[name]
    return value === undefined
      ? `${name} is not set (${message.toLowerCase()})`
      : `${name}=${JSON.stringify(value)} is refused: ${message.charAt(0).toLowerCase()}${message.slice(1)}`
  }).join("; ")
}

/**
 * Why a launcher (`batch`, `serve` on Bun or Deno) could not start, in one line that names the
 * variable or the endpoint at fault and what was expected — never an object dump or a stack. The
 * environment is read here only to name what the user set.
 */
export const startupProblem = (error: unknown): string => {
  if (error instanceof Config.ConfigError) return configProblem(error)
  if (error instanceof PartnersFileError) {
    return `LOADERS_PARTNERS_FILE=${error.path}: ${oneLine(error.reason)} (expected a JSON file of partner settings, see README.md "Reports to partners")`
  }
  const databaseUrl = process.env.DATABASE_URL
  if (error instanceof DatabaseError && error.reason !== "Refused" && databaseUrl !== undefined) {
    return `DATABASE_URL=${hidePassword(databaseUrl)}: no PostgreSQL server answered (${oneLine(error.message)})`
  }
  if (error instanceof ObjectStoreError) {
    const endpoint = process.env.LOADERS_S3_ENDPOINT
    const where = endpoint === undefined ? `LOADERS_S3_BUCKET=${error.bucket} on AWS S3` : `LOADERS_S3_ENDPOINT=${endpoint}`
    return `${where}: expected an S3 endpoint serving bucket "${error.bucket}" (${oneLine(error.message)})`
  }
  return oneLine(error instanceof Error ? error.message : String(error))
}
