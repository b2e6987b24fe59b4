import { readdirSync, readFileSync } from "node:fs"

/** The fields of `/proc/<pid>/stat` after the command name (field 3 of stat is at 0). */
export const procStat = (pid: number | string): Array<string> | undefined => {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")
  } catch {
    // The process ended while we looked.
    return undefined
  }
}

/** CPU seconds used so far by the process `pid` itself (utime + stime); 0 once it has ended. */
export const processCpuSeconds = (pid: number): number => {
  const fields = procStat(pid)
  return fields === undefined ? 0 : (Number(fields[11]) + Number(fields[12])) / 100
}

/** The first process whose command line holds `fragment` (Linux), or undefined. */
export const processWith = (fragment: string): number | undefined => {
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8").includes(fragment)) return Number(pid)
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined
}

/**
 * The calling process's main thread so far, from the scheduler (`/proc/self/task/<pid>/schedstat`,
 * Linux): seconds on a core, and seconds it was ready to run but waited for one.
 */
export const mainThreadSchedule = (): { readonly onCpu: number; readonly waiting: number } => {
  const [onCpu = 0, waiting = 0] = readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8").trim().split(" ").map(Number)
  return { onCpu: onCpu / 1e9, waiting: waiting / 1e9 }
}
