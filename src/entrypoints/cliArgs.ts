import { parseArgs, type ParseArgsOptionsConfig } from "node:util"

/** A small command's bad usage: what is wrong, then how to use it, on stderr; exit status 2. */
export const usageExit = (command: string, usage: string) => (message: string): never => {
  console.error(`${command}: ${message}\n\n${usage}`)
  process.exit(2)
}

/** This process's arguments parsed against `options` (positionals allowed), or `fail` with the parser's reason. */
export const commandLine = <const O extends ParseArgsOptionsConfig>(options: O, fail: (message: string) => never) => {
  try {
    return parseArgs({ args: process.argv.slice(2), allowPositionals: true, options })
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error))
  }
}
