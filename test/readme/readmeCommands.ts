/**
 * The README's runnable commands, as `test/readme/commands.ts` runs them.
 *
 * Marking, kept to what a writer adds without thinking:
 * - every line of a ```sh (or bash/shell) fence is a command, run in order through bash, a
 *   trailing `\` joining the next line; `#` comments are the shell's;
 * - `# → text` on a line of its own: a line of the previous command's output (stdout or stderr)
 *   must contain `text`;
 * - a command ending in `&` is a server: it runs in the background until its `# → text` lines
 *   have all appeared, and is stopped when its fence ends;
 * - `<!-- readme: not run: reason -->` on the line just before a fence: its commands are listed
 *   with the reason and not run (for what needs a service this machine has not, such as Docker).
 */

export interface ReadmeCommand {
  readonly line: number
  readonly command: string
  readonly expect: ReadonlyArray<string>
  readonly background: boolean
}

export interface ReadmeBlock {
  readonly line: number
  readonly commands: ReadonlyArray<ReadmeCommand>
  readonly notRun: string | undefined
}

const fenceOpen = /^```(sh|bash|shell)\s*$/
const notRunMark = /^<!--\s*readme:\s*not run:\s*(.+?)\s*-->$/
const expectMark = /^#\s*→\s*(.+)$/

/** A trailing shell comment, so that `npm run serve &   # why` is seen to end in `&`. */
const withoutComment = (command: string) => command.replace(/\s+#\s.*$/, "").trimEnd()

export const readmeBlocks = (markdown: string): ReadonlyArray<ReadmeBlock> => {
  const lines = markdown.split("\n")
  const blocks: Array<ReadmeBlock> = []
  for (let i = 0; i < lines.length; i++) {
    if (!fenceOpen.test(lines[i]!.trim())) continue
    const notRun = notRunMark.exec(lines[i - 1]?.trim() ?? "")?.[1]
    const blockLine = i + 1
    const commands: Array<{ line: number; command: string; expect: Array<string>; background: boolean }> = []
    let pending = ""
    let pendingLine = 0
    for (i++; i < lines.length && lines[i]!.trim() !== "```"; i++) {
      const text = lines[i]!.trim()
      if (pending === "") pendingLine = i + 1
      if (text.endsWith("\\")) {
        pending += text.slice(0, -1) + " "
        continue
      }
      const whole = (pending + text).trim()
      pending = ""
      const expected = expectMark.exec(whole)?.[1]
      if (expected !== undefined) {
        const last = commands.at(-1)
        if (last === undefined) throw new Error(`README.md:${i + 1}: "# → ${expected}" follows no command`)
        last.expect.push(expected)
        continue
      }
      if (whole === "" || whole.startsWith("#")) continue
      const background = withoutComment(whole).endsWith("&") && !withoutComment(whole).endsWith("&&")
      const command = background ? withoutComment(whole).slice(0, -1).trimEnd() : whole
      commands.push({ line: pendingLine, command, expect: [], background })
    }
    blocks.push({ line: blockLine, commands, notRun })
  }
  return blocks
}
