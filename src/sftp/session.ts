import { Clock, Data, Effect, FiberSet, Option, Queue, Scope, Stream } from "effect"
import type { Attributes, FileEntry, SFTPWrapper } from "ssh2"
import { utils } from "ssh2"
import { deliveryKey } from "../domain/DeliveryFolder.ts"
import type { JobQueue, JobQueueError } from "../effects/JobQueue.ts"
import { ObjectStore, type ObjectStoreError } from "../effects/ObjectStore.ts"
import { offerDelivery } from "../pipeline/deliveryJob.ts"
import { PipelineConfig } from "../pipeline/PipelineConfig.ts"
import { type Area, AREAS, canonical, childOf, listPrefix, type Place, place } from "./paths.ts"
import { startUpload, type UploadTooLarge } from "./upload.ts"

const { OPEN_MODE, STATUS_CODE } = utils.sftp

/** Files one session may have open for writing at once (each holds up to two 8 MiB parts). */
const MAX_OPEN_UPLOADS = 4
/**
 * Bytes of WRITE requests received but not yet taken by their upload, per session. OpenSSH's
 * client keeps at most 64 requests of 32 KiB in flight; a client pushing far more without waiting
 * for the answers is refused rather than buffered.
 */
const MAX_PENDING_BYTES = 32 * 1024 * 1024
const DIRECTORY_PAGE = 100

/** A request refused: answered with `code`, logged as one line and traced. */
export class SftpRefusal extends Data.TaggedError("SftpRefusal")<{
  readonly code: "PERMISSION_DENIED" | "FAILURE" | "OP_UNSUPPORTED"
  readonly reason: string
}> {}

/** A path that is not there: a plain answer (clients look before they write), not a refusal. */
class Missing extends Data.TaggedError("Missing")<{ readonly path: string }> {}

/** Who is on the other end of a session. */
export interface Peer {
  readonly partner: string
  /** `address:port` of the client. */
  readonly remote: string
}

/** What a session did, for its log line. */
export interface SessionSummary {
  uploads: number
  bytes: number
  aborted: number
  refusals: number
}

type Failure = SftpRefusal | Missing | ObjectStoreError | JobQueueError | UploadTooLarge
type Services = ObjectStore | PipelineConfig | JobQueue

/** Where an upload stands, as its handle sees it. */
interface Receiving {
  bytes: number
  /** Its fiber ended (closed, failed or aborted): no more writes are taken. */
  done: boolean
}

type Task =
  | { readonly _tag: "Write"; readonly id: number; readonly offset: number; readonly data: Uint8Array }
  | { readonly _tag: "Close"; readonly id: number }

type Handle =
  | { readonly _tag: "Read"; readonly key: string; readonly attrs: Attributes }
  | { readonly _tag: "Dir"; readonly entries: Array<FileEntry> }
  | { readonly _tag: "Write"; readonly tasks: Queue.Queue<Task>; readonly state: Receiving }

const S_IFDIR = 0o040000
const S_IFREG = 0o100000

const directory = (writable: boolean, mtime = 0): Attributes => ({
  mode: S_IFDIR | (writable ? 0o755 : 0o555),
  uid: 0,
  gid: 0,
  size: 0,
  atime: mtime,
  mtime
})

const file = (writable: boolean, size: number, modified: Date): Attributes => {
  const mtime = Math.floor(modified.getTime() / 1000)
  return { mode: S_IFREG | (writable ? 0o644 : 0o444), uid: 0, gid: 0, size, atime: mtime, mtime }
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

/** The `ls -l` line OpenSSH's client prints for an entry. */
const longname = (name: string, attrs: Attributes, owner: string): string => {
  const bits = "rwxrwxrwx".split("").map((flag, i) => (attrs.mode & (0o400 >> i) ? flag : "-")).join("")
  const date = new Date(attrs.mtime * 1000)
  const day = `${MONTHS[date.getUTCMonth()]} ${String(date.getUTCDate()).padStart(2, " ")}`
  const time = `${String(date.getUTCHours()).padStart(2, "0")}:${String(date.getUTCMinutes()).padStart(2, "0")}`
  return `${attrs.mode & S_IFDIR ? "d" : "-"}${bits} 1 ${owner} ${owner} ${String(attrs.size).padStart(10)} ${day} ${time} ${name}`
}

const denied = (reason: string) => new SftpRefusal({ code: "PERMISSION_DENIED", reason })

/**
 * Serves one SFTP subsystem for `peer` until the client ends it: the partner's own tree (see
 * `paths.ts`), uploads streamed into the bucket, the archive read back. Requests run concurrently,
 * except that each upload takes its writes in order, in a fiber of its own (its span), and a WRITE
 * is answered once its upload took the bytes. When the session ends, uploads still open are
 * aborted: no object appears for a file that was not closed. Ends the channel itself when the
 * client ends its side (the client waits for that before it exits).
 */
export const serveSftp = (sftp: SFTPWrapper, peer: Peer) =>
  Effect.gen(function*() {
    const store = yield* ObjectStore
    const config = yield* PipelineConfig
    const scope = yield* Scope.Scope
    const fibers = yield* FiberSet.make()
    const run = yield* FiberSet.runtime(fibers)<Services>()
    const prefixes = { incoming: config.incomingPrefix, success: config.successPrefix, failure: config.failurePrefix }
    const summary: SessionSummary = { uploads: 0, bytes: 0, aborted: 0, refusals: 0 }
    const handles = new Map<string, Handle>()
    /** Folders made by MKDIR in this session: S3 has no empty folders, so they live as long as it. */
    const folders = new Set<string>()
    let nextHandle = 0
    let openUploads = 0
    let pending = 0

    const where = (path: string) => place(path, peer.partner, prefixes)
    const bucketUrl = (key: string) => `s3://${store.bucket}/${key}`

    const refuse = (op: string, path: string, refusal: SftpRefusal) =>
      Effect.logWarning(`sftp refused ${peer.partner} from ${peer.remote}: ${op} ${JSON.stringify(path)}: ${refusal.reason}`).pipe(
        Effect.andThen(Effect.sync(() => summary.refusals++)),
        Effect.withSpan("Sftp.refused", {
          attributes: { "loaders.partner": peer.partner, "sftp.operation": op, "sftp.path": path, "sftp.reason": refusal.reason }
        })
      )

    /** Runs a request's handler and answers the failures it ends with. */
    const answer = (id: number, op: string, path: string, handler: Effect.Effect<void, Failure, Services>) =>
      void run(handler.pipe(
        Effect.catch((failure) => {
          switch (failure._tag) {
            case "Missing":
              return Effect.sync(() => sftp.status(id, STATUS_CODE.NO_SUCH_FILE, `${failure.path}: no such file or folder`))
            case "SftpRefusal":
              return refuse(op, path, failure).pipe(Effect.andThen(Effect.sync(() => sftp.status(id, STATUS_CODE[failure.code], failure.reason))))
            default:
              return Effect.logError(`sftp ${op} ${JSON.stringify(path)} for ${peer.partner} failed: ${failure.message}`).pipe(
                Effect.andThen(Effect.sync(() => sftp.status(id, STATUS_CODE.FAILURE, "the storage failed; try again later")))
              )
          }
        })
      ))

    const area = (path: string) =>
      Effect.suspend(() => {
        const found = where(path)
        return found._tag === "Refused" ? Effect.fail(denied(found.reason)) : Effect.succeed(found)
      })

    /** A path inside `/incoming/<delivery>/` (a file, or a folder below the delivery). */
    const incomingFile = (path: string, what: string) =>
      Effect.flatMap(area(path), (found) => {
        if (found._tag === "Area" && found.area === "incoming" && found.segments.length >= 2) return Effect.succeed(found)
        if (found._tag === "Area" && found.area !== "incoming") return Effect.fail(denied(`/${found.area} is read-only`))
        return Effect.fail(denied(`${what} only inside a delivery folder: /incoming/<delivery>/<file>`))
      })

    const hasObjectsUnder = (prefix: string) => Stream.runHead(store.list(prefix)).pipe(Effect.map(Option.isSome))

    /** What STAT answers for a place, or `undefined` when nothing is there. */
    const attributesOf = (found: Place) =>
      Effect.gen(function*() {
        if (found._tag === "Root") return directory(false)
        if (found._tag === "Refused") return yield* denied(found.reason)
        const writable = found.area === "incoming"
        if (found.segments.length === 0) return directory(writable)
        const object = yield* store.head(found.key).pipe(
          Effect.map(Option.some),
          Effect.catchIf((error) => error.reason === "NotFound", () => Effect.succeed(Option.none()))
        )
        if (Option.isSome(object)) return file(writable, object.value.size, object.value.lastModified)
        if (folders.has(found.path) || (yield* hasObjectsUnder(listPrefix(found)))) return directory(writable)
        return undefined
      })

    const stat = (path: string) =>
      Effect.flatMap(attributesOf(where(path)), (attrs) => attrs ? Effect.succeed(attrs) : Effect.fail(new Missing({ path })))

    /** The entries directly below a place: objects and folders of the bucket, and this session's folders. */
    const entriesOf = (found: Place) =>
      Effect.gen(function*() {
        if (found._tag === "Refused") return yield* denied(found.reason)
        if (found._tag === "Root") {
          return AREAS.map((name: Area): FileEntry => {
            const attrs = directory(name === "incoming")
            return { filename: name, longname: longname(name, attrs, peer.partner), attrs }
          })
        }
        const writable = found.area === "incoming"
        const prefix = listPrefix(found)
        const entries = new Map<string, Attributes>()
        yield* Stream.runForEach(store.list(prefix), (object) =>
          Effect.sync(() => {
            const child = childOf(prefix, object.key)
            if (child === undefined) return
            const modified = Math.floor(object.lastModified.getTime() / 1000)
            // A folder shows the time of its newest object.
            if (child.folder) entries.set(child.name, directory(writable, Math.max(modified, entries.get(child.name)?.mtime ?? 0)))
            else entries.set(child.name, file(writable, object.size, object.lastModified))
          }))
        for (const folder of folders) {
          const child = childOf(`${found.path}/`, folder)
          if (child) entries.set(child.name, directory(true))
        }
        if (entries.size === 0 && found.segments.length > 0 && !folders.has(found.path)) return yield* new Missing({ path: found.path })
        return [...entries].map(([filename, attrs]): FileEntry => ({ filename, longname: longname(filename, attrs, peer.partner), attrs }))
      })

    const newHandle = (handle: Handle): Buffer => {
      const id = String(++nextHandle)
      handles.set(id, handle)
      return Buffer.from(id)
    }
    const handleOf = (buffer: Buffer) => handles.get(buffer.toString())

    /** Offers the delivery a file under `/incoming` belongs to, as S3's object-created event would. */
    const offer = (found: Extract<Place, { _tag: "Area" }>) =>
      Effect.gen(function*() {
        const key = deliveryKey(store.bucket, `${prefixes.incoming}${peer.partner}/${found.segments[0]}/`, prefixes.incoming)
        if (key === undefined) return
        yield* offerDelivery(key).pipe(
          Effect.catch((error) =>
            Effect.logWarning(`${key.prefix}: not handed to the workers (${error.message}); the reconciliation scan will find it`)
          )
        )
      })

    /** One file being received: its writes in order, then its close; aborted if the session ends first. */
    const receive = (found: Extract<Place, { _tag: "Area" }>, tasks: Queue.Queue<Task>, state: Receiving) =>
      Effect.gen(function*() {
        const upload = yield* startUpload(found.key)
        const began = yield* Clock.currentTimeMillis
        let broken: string | undefined
        for (;;) {
          const task = yield* Queue.take(tasks)
          if (task._tag === "Write") {
            pending -= task.data.length
            if (broken === undefined && task.offset !== upload.size()) {
              broken = `writes must follow each other from the start of the file (got offset ${task.offset}, expected ${upload.size()})`
              yield* refuse("WRITE", found.path, new SftpRefusal({ code: "OP_UNSUPPORTED", reason: broken }))
            }
            if (broken === undefined) {
              const written = yield* Effect.result(upload.write(task.data))
              state.bytes = upload.size()
              if (written._tag === "Failure") {
                broken = written.failure.message
                yield* Effect.logError(`sftp upload ${found.path} by ${peer.partner} failed: ${broken}`)
              }
            }
            if (broken === undefined) sftp.status(task.id, STATUS_CODE.OK)
            else sftp.status(task.id, STATUS_CODE.FAILURE, broken)
            continue
          }
          if (broken !== undefined) {
            sftp.status(task.id, STATUS_CODE.FAILURE, broken)
            summary.aborted++
            return
          }
          const closed = yield* Effect.result(upload.close)
          if (closed._tag === "Failure") {
            yield* Effect.logError(`sftp upload ${found.path} by ${peer.partner} failed: ${closed.failure.message}`)
            sftp.status(task.id, STATUS_CODE.FAILURE, "the storage failed; try again later")
            summary.aborted++
            return
          }
          const seconds = ((yield* Clock.currentTimeMillis) - began) / 1000
          summary.uploads++
          summary.bytes += closed.success
          yield* Effect.annotateCurrentSpan({ "sftp.bytes": closed.success })
          yield* Effect.logInfo(
            `sftp upload by ${peer.partner}: ${found.path} → ${bucketUrl(found.key)}, ${closed.success} bytes in ${seconds.toFixed(1)} s`
          )
          yield* offer(found)
          sftp.status(task.id, STATUS_CODE.OK)
          return
        }
      }).pipe(
        Effect.scoped,
        Effect.onInterrupt(() =>
          Effect.logWarning(
            `sftp upload ${found.path} by ${peer.partner} aborted: the session ended before the file was closed; nothing was stored`
          ).pipe(Effect.andThen(Effect.sync(() => summary.aborted++)))
        ),
        Effect.ensuring(Effect.sync(() => {
          openUploads--
          state.done = true
        })),
        Effect.withSpan("Sftp.upload", {
          attributes: { "loaders.partner": peer.partner, "sftp.path": found.path, "aws.s3.bucket": store.bucket, "aws.s3.key": found.key }
        })
      )

    const openForWrite = (id: number, path: string, flags: number) =>
      Effect.gen(function*() {
        const found = yield* incomingFile(path, "files can be written")
        if (flags & OPEN_MODE.APPEND) return yield* new SftpRefusal({ code: "OP_UNSUPPORTED", reason: "appending is not supported: upload the whole file" })
        if (openUploads >= MAX_OPEN_UPLOADS) {
          return yield* new SftpRefusal({ code: "FAILURE", reason: `at most ${MAX_OPEN_UPLOADS} files may be uploaded at once in a session` })
        }
        if (flags & OPEN_MODE.EXCL && (yield* attributesOf(found)) !== undefined) {
          return yield* new SftpRefusal({ code: "FAILURE", reason: `${found.path} already exists` })
        }
        const tasks = yield* Queue.unbounded<Task>()
        const state: Receiving = { bytes: 0, done: false }
        openUploads++
        yield* receive(found, tasks, state).pipe(Effect.forkIn(scope))
        sftp.handle(id, newHandle({ _tag: "Write", tasks, state }))
      })

    const openForRead = (id: number, path: string) =>
      Effect.gen(function*() {
        const found = yield* area(path)
        if (found._tag === "Root" || found.segments.length === 0) return yield* new SftpRefusal({ code: "FAILURE", reason: `${path} is a folder` })
        const attrs = yield* stat(path)
        if (attrs.mode & S_IFDIR) return yield* new SftpRefusal({ code: "FAILURE", reason: `${found.path} is a folder` })
        sftp.handle(id, newHandle({ _tag: "Read", key: found.key, attrs }))
      })

    sftp.on("REALPATH", (id, path) => {
      const resolved = canonical(path)
      sftp.name(id, [{ filename: resolved, longname: resolved, attrs: directory(false) }])
    })
    const onStat = (id: number, path: string) =>
      answer(id, "STAT", path, Effect.flatMap(stat(path), (attrs) => Effect.sync(() => sftp.attrs(id, attrs))))
    sftp.on("STAT", onStat)
    sftp.on("LSTAT", onStat)
    sftp.on("OPENDIR", (id, path) =>
      answer(
        id,
        "OPENDIR",
        path,
        Effect.flatMap(entriesOf(where(path)), (entries) => Effect.sync(() => sftp.handle(id, newHandle({ _tag: "Dir", entries }))))
      ))
    sftp.on("READDIR", (id, buffer) => {
      const handle = handleOf(buffer)
      if (handle?._tag !== "Dir") return sftp.status(id, STATUS_CODE.FAILURE, "not a folder handle")
      if (handle.entries.length === 0) return sftp.status(id, STATUS_CODE.EOF)
      sftp.name(id, handle.entries.splice(0, DIRECTORY_PAGE))
    })
    sftp.on("OPEN", (id, path, flags) => {
      const writing = (flags & (OPEN_MODE.WRITE | OPEN_MODE.APPEND | OPEN_MODE.CREAT | OPEN_MODE.TRUNC)) !== 0
      answer(id, writing ? "OPEN for writing" : "OPEN", path, writing ? openForWrite(id, path, flags) : openForRead(id, path))
    })
    sftp.on("WRITE", (id, buffer, offset, data) => {
      const handle = handleOf(buffer)
      if (handle?._tag !== "Write" || handle.state.done) return sftp.status(id, STATUS_CODE.FAILURE, "not a file open for writing")
      if (pending + data.length > MAX_PENDING_BYTES) {
        return sftp.status(id, STATUS_CODE.FAILURE, "too many writes waiting for their answer")
      }
      pending += data.length
      Queue.offerUnsafe(handle.tasks, { _tag: "Write", id, offset, data })
    })
    sftp.on("READ", (id, buffer, offset, length) => {
      const handle = handleOf(buffer)
      if (handle?._tag !== "Read") return sftp.status(id, STATUS_CODE.FAILURE, "not a file open for reading")
      if (offset >= handle.attrs.size) return sftp.status(id, STATUS_CODE.EOF)
      const end = Math.min(handle.attrs.size, offset + length)
      answer(
        id,
        "READ",
        handle.key,
        Stream.runCollect(store.get(handle.key, { start: offset, end })).pipe(
          Effect.map((chunks) => Buffer.concat(chunks)),
          Effect.flatMap((data) => Effect.sync(() => sftp.data(id, data)))
        )
      )
    })
    sftp.on("FSTAT", (id, buffer) => {
      const handle = handleOf(buffer)
      if (handle === undefined) return sftp.status(id, STATUS_CODE.FAILURE, "unknown handle")
      sftp.attrs(
        id,
        handle._tag === "Read" ? handle.attrs : handle._tag === "Dir" ? directory(false) : file(true, handle.state.bytes, new Date())
      )
    })
    sftp.on("CLOSE", (id, buffer) => {
      const handle = handleOf(buffer)
      if (handle === undefined) return sftp.status(id, STATUS_CODE.FAILURE, "unknown handle")
      handles.delete(buffer.toString())
      if (handle._tag === "Write" && !handle.state.done) Queue.offerUnsafe(handle.tasks, { _tag: "Close", id })
      else sftp.status(id, STATUS_CODE.OK)
    })
    // Attributes (times, modes) mean nothing to objects: accepted and ignored where writing is allowed.
    sftp.on("FSETSTAT", (id, buffer) =>
      sftp.status(id, handleOf(buffer)?._tag === "Write" ? STATUS_CODE.OK : STATUS_CODE.PERMISSION_DENIED))
    sftp.on("SETSTAT", (id, path) =>
      answer(id, "SETSTAT", path, Effect.flatMap(incomingFile(path, "attributes can be set"), () => Effect.sync(() => sftp.status(id, STATUS_CODE.OK)))))
    sftp.on("MKDIR", (id, path) =>
      answer(
        id,
        "MKDIR",
        path,
        Effect.gen(function*() {
          const found = yield* area(path)
          if (found._tag !== "Area" || found.area !== "incoming" || found.segments.length === 0) {
            return yield* denied("folders can be made only inside /incoming (a delivery: /incoming/<delivery>)")
          }
          if ((yield* attributesOf(found)) !== undefined) return yield* new SftpRefusal({ code: "FAILURE", reason: `${found.path} already exists` })
          for (let depth = 2; depth <= found.segments.length + 1; depth++) folders.add(`/${["incoming", ...found.segments].slice(0, depth).join("/")}`)
          sftp.status(id, STATUS_CODE.OK)
        })
      ))
    sftp.on("RMDIR", (id, path) =>
      answer(
        id,
        "RMDIR",
        path,
        Effect.gen(function*() {
          const found = yield* area(path)
          if (found._tag !== "Area" || found.area !== "incoming" || found.segments.length === 0) {
            return yield* denied("only folders inside /incoming can be removed")
          }
          if (yield* hasObjectsUnder(listPrefix(found))) return yield* new SftpRefusal({ code: "FAILURE", reason: `${found.path} is not empty` })
          if (!folders.delete(found.path)) return yield* new Missing({ path: found.path })
          sftp.status(id, STATUS_CODE.OK)
        })
      ))
    sftp.on("REMOVE", (id, path) =>
      answer(
        id,
        "REMOVE",
        path,
        Effect.gen(function*() {
          const found = yield* incomingFile(path, "files can be removed")
          const attrs = yield* stat(path)
          if (attrs.mode & S_IFDIR) return yield* new SftpRefusal({ code: "FAILURE", reason: `${found.path} is a folder` })
          yield* store.delete(found.key)
          yield* Effect.logInfo(`sftp remove by ${peer.partner}: ${found.path} (${bucketUrl(found.key)})`)
          sftp.status(id, STATUS_CODE.OK)
        })
      ))
    sftp.on("RENAME", (id, from, to) =>
      answer(
        id,
        "RENAME",
        `${from} → ${to}`,
        Effect.gen(function*() {
          const source = yield* incomingFile(from, "files can be renamed")
          const target = yield* incomingFile(to, "files can be renamed")
          const attrs = yield* stat(from)
          if (attrs.mode & S_IFDIR) return yield* new SftpRefusal({ code: "OP_UNSUPPORTED", reason: "folders cannot be renamed; rename files" })
          if ((yield* attributesOf(target)) !== undefined) return yield* new SftpRefusal({ code: "FAILURE", reason: `${target.path} already exists` })
          // S3 has no rename: copy, then delete; the file is briefly under both names, never under none.
          yield* store.copy(source.key, target.key)
          yield* store.delete(source.key)
          yield* Effect.logInfo(`sftp rename by ${peer.partner}: ${source.path} → ${target.path}`)
          yield* offer(target)
          sftp.status(id, STATUS_CODE.OK)
        })
      ))
    for (const op of ["READLINK", "SYMLINK", "EXTENDED"] as const) {
      sftp.on(op, (id: number, path: string) => {
        const refusal = new SftpRefusal({ code: "OP_UNSUPPORTED", reason: `${op} is not supported here` })
        run(refuse(op, String(path), refusal))
        sftp.status(id, STATUS_CODE.OP_UNSUPPORTED, refusal.reason)
      })
    }

    // Bun's streams do not end the channel for us: without this the client waits forever after `bye`.
    sftp.once("end", () => sftp.end())
    yield* Effect.callback<void>((resume) => {
      sftp.once("close", () => resume(Effect.void))
    })
    return summary
  })
