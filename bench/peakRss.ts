import { readFileSync } from "node:fs"

/** Peak resident set size of this process, in bytes (VmHWM, Linux). */
export const peakRss = (): number => {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))
  return match ? Number(match[1]) * 1024 : process.memoryUsage().rss
}
