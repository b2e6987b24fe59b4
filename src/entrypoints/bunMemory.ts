/**
 * Bun's collector lets garbage from byte streams pile up far past what a server moving bytes needs:
 * the SSH layer makes a fresh buffer for every packet decrypted, the HTTP layer one per body chunk.
 * 100 MB–1 GB uploads peaked at 230–330 MiB over SFTP though what was alive stayed near 110 MiB, and
 * a 1 GB streaming PUT at 173–217 MB. A full collection whenever the buffers not yet freed have
 * grown by `COLLECT_AFTER` since the last one (checked every 50 ms) kept the peak of a 1 GB SFTP
 * upload at 183 MiB (`npm run bench:sftp`), of a 1 GB streaming PUT at 164–172 MB and of a tus
 * upload at 187 MB, at the same rates (`npm run bench:ingest`); a 1 GB delivery into PostgreSQL and
 * the S3 lake at 295–299 MB instead of 341–355 (measured when both lake formats were encoded on a
 * thread that handed back a buffer per batch; `npm run bench:pipeline -- --lake`, then with the
 * guard at 16 MiB); an idle server, or one only holding what it uses, is never collected. The
 * resident set itself is no trigger: it does not shrink at once after a collection. For Bun
 * launchers only (`Bun.gc`).
 */
export const COLLECT_AFTER = {
  /** Servers that move partners' bytes (`serve`, `sftp`): the figures above. */
  uploads: 16 * 1024 * 1024,
  /**
   * Processes that load deliveries (`batch`, `worker`): every collection stops the pipeline's one
   * thread and hands memory back to be faulted in again. A 1 GB delivery of accented records
   * (`bench:pipeline`, 2026-12-02, interleaved runs) with 16 MiB: 34–42 s, 37–46 CPU-s, 700k page
   * faults, peak 216–219 MB; with 32 MiB: 31–33 s, 32–34 CPU-s, 270 MB; 64 MiB: 28–32 s, 28–33 CPU-s,
   * 283–303 MB; without the guard: 23–32 s, 23–34 CPU-s, 280–309 MB.
   */
  deliveries: 32 * 1024 * 1024
} as const

/** Collects whenever the buffers not yet freed have grown by `collectAfter` bytes (`COLLECT_AFTER`). */
export const keepMemoryDown = (collectAfter: number): void => {
  let floor = process.memoryUsage().arrayBuffers
  setInterval(() => {
    if (process.memoryUsage().arrayBuffers < floor + collectAfter) return
    Bun.gc(true)
    floor = process.memoryUsage().arrayBuffers
  }, 50).unref()
}
