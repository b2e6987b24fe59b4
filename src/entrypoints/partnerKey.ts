// `npm run partner-key -- <partner> [--add-to <partners file>]`: makes an API key for a partner.
// Plain synchronous code: it reads no configuration and reaches no service, so it needs no runtime.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname } from "node:path"
import { parseArgs } from "node:util"
import { hashApiKey, newApiKey } from "../../schemas/ApiKey.ts"
import { NAME_RULE, nameProblem } from "../../schemas/DeliveryName.ts"

const USAGE = `Usage: npm run partner-key -- <partner> [--add-to <partners file>]

Makes a new API key for <partner> and prints it once on stdout (nothing keeps it: give it to the
partner). On stderr: the line to add to the partner's "apiKeys" in the partners file
(LOADERS_PARTNERS_FILE), which keeps only the key's hash. --add-to adds the hash to that file itself
(created if missing). A partner may hold two keys at once while it rotates; removing a hash revokes
its key (restart serve to apply).`

const fail = (message: string): never => {
  console.error(`partner-key: ${message}`)
  process.exit(2)
}

const parsed = (() => {
  try {
    return parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { "add-to": { type: "string" }, help: { type: "boolean" } } })
  } catch (error) {
    return fail(`${error instanceof Error ? error.message : String(error)}\n\n${USAGE}`)
  }
})()
if (parsed.values.help) {
  console.log(USAGE)
  process.exit(0)
}
const [partner, ...extra] = parsed.positionals
if (partner === undefined || extra.length > 0) fail(`expected one partner name\n\n${USAGE}`)
const problem = nameProblem(partner!)
if (problem) fail(`partner name ${JSON.stringify(partner)} is refused (${problem}); ${NAME_RULE}`)

const key = newApiKey()
const hash = hashApiKey(key)
const file = parsed.values["add-to"]
if (file !== undefined) {
  const text = existsSync(file) ? readFileSync(file, "utf8") : "{}"
  let partners: Record<string, { apiKeys?: Array<string> } & Record<string, unknown>>
  try {
    partners = JSON.parse(text)
  } catch (error) {
    fail(`${file} is not JSON: ${error instanceof Error ? error.message : String(error)}`)
  }
  const settings = partners![partner!] ?? {}
  partners![partner!] = { ...settings, apiKeys: [...(settings.apiKeys ?? []), hash] }
  mkdirSync(dirname(file), { recursive: true })
  writeFileSync(file, `${JSON.stringify(partners!, null, 2)}\n`)
  console.error(`Added the key's hash to "${partner}" in ${file}; restart serve to use it.`)
} else {
  console.error(`Add the key's hash to "apiKeys" of "${partner}" in the partners file (LOADERS_PARTNERS_FILE), e.g.:`)
  console.error(`  ${JSON.stringify({ [partner!]: { apiKeys: [hash] } })}`)
}
console.error(`The key, shown once (give it to the partner; it goes in "Authorization: Bearer <key>"):`)
console.log(key)
