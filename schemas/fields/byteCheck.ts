import { Schema, SchemaAST } from "effect"

/**
 * A field's checks, run on the raw bytes of a JSON string (`bytes[start, end)`, between its quotes,
 * without escapes): true only when the string passes every check of the field, so the byte reader
 * (`byteReader.ts`) can take it without making the string first and running them. False means
 * "not sure", never "invalid": the checks then run on the string as usual. Written for the forms
 * partners send most (an IBAN without spaces, an amount without thousands separators).
 */
export type ByteCheck = (bytes: Uint8Array, start: number, end: number) => boolean

const BYTE_CHECK = "loaders.byteCheck"

/**
 * `schema` with `check` standing for its checks. It rides on the last check, as Schema keeps a
 * checked schema's annotations: a check added after it leaves the schema without one, since
 * `check` would not cover it.
 */
export const withByteCheck = <S extends Schema.Top>(schema: S, check: ByteCheck): S["Rebuild"] =>
  schema.annotate({ [BYTE_CHECK]: check })

/** The byte check standing for the node's checks, if it has one. */
export const byteCheckOf = (ast: SchemaAST.AST): ByteCheck | undefined => {
  const found = SchemaAST.resolve(ast)?.[BYTE_CHECK]
  return typeof found === "function" ? (found as ByteCheck) : undefined
}
