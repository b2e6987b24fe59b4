/** Metadata of one stored object, as a listing or a HEAD tells it. */
export interface ObjectInfo {
  readonly key: string
  readonly size: number
  /** ETag without surrounding quotes. */
  readonly etag: string
  readonly lastModified: Date
}
