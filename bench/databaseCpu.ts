import { Effect } from "effect"
import { readdirSync } from "node:fs"
import postgres from "postgres"
import { procStat } from "./processCpu.ts"

/** The process id of the PostgreSQL server at `url`: the parent of a backend serving it. */
export const postmasterOf = (url: string) =>
  Effect.promise(async () => {
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const [row] = await sql<Array<{ pid: number }>>`SELECT pg_backend_pid() AS pid`
    // Read while the backend lives: once the connection ends, its process may be gone.
    const parent = Number(procStat(row!.pid)?.[1])
    await sql.end()
    return parent
  })

/**
 * CPU seconds used so far by the PostgreSQL server whose postmaster is `postmaster`: its own and
 * every child's, with the children each has reaped (so backends that ended count too); other
 * servers on the machine are left out. Linux only; clock ticks of 1/100 s.
 */
export const databaseCpuSeconds = (postmaster: number): number => {
  let ticks = 0
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    const fields = procStat(pid)
    if (fields === undefined || (Number(pid) !== postmaster && Number(fields[1]) !== postmaster)) continue
    // utime, stime, cutime, cstime: fields 14–17 of stat, 11–14 here.
    ticks += [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0)
  }
  return ticks / 100
}
