const utf8 = new TextEncoder()

/**
 * Bytes written in place into one buffer that is reused from batch to batch (it grows to the
 * largest batch and stays there): no string per row, no copy from a string to bytes. Numbers in
 * the byte order of the format written (big-endian for PostgreSQL, little-endian for Parquet).
 * `bytes` up to `length` is what was written since the last `reset`.
 */
export class WriteBuffer {
  bytes: Uint8Array<ArrayBuffer>
  length = 0
  protected view: DataView

  constructor(private readonly littleEndian: boolean, size = 1 << 16) {
    this.bytes = new Uint8Array(size)
    this.view = new DataView(this.bytes.buffer)
  }

  /** The bytes written since the last `reset`: a view, valid until the next write. */
  get written(): Uint8Array<ArrayBuffer> {
    return this.bytes.subarray(0, this.length)
  }

  reset(): void {
    this.length = 0
  }

  protected room(bytes: number): void {
    if (this.length + bytes <= this.bytes.length) return
    const grown = new Uint8Array(Math.max(this.bytes.length * 2, this.length + bytes))
    grown.set(this.written)
    this.bytes = grown
    this.view = new DataView(grown.buffer)
  }

  int16(value: number): void {
    this.room(2)
    this.view.setInt16(this.length, value, this.littleEndian)
    this.length += 2
  }

  int32(value: number): void {
    this.room(4)
    this.view.setInt32(this.length, value, this.littleEndian)
    this.length += 4
  }

  /** A safe integer as a signed 64-bit integer. */
  int64(value: number): void {
    this.room(8)
    const high = Math.floor(value / 2 ** 32)
    const low = value - high * 2 ** 32
    this.view.setInt32(this.length + (this.littleEndian ? 4 : 0), high, this.littleEndian)
    this.view.setUint32(this.length + (this.littleEndian ? 0 : 4), low, this.littleEndian)
    this.length += 8
  }

  float64(value: number): void {
    this.room(8)
    this.view.setFloat64(this.length, value, this.littleEndian)
    this.length += 8
  }

  byte(value: number): void {
    this.room(1)
    this.bytes[this.length++] = value
  }

  /**
   * `text` in UTF-8 after its length (an int32), with `prefix` bytes first (a type's version
   * byte, or none). ASCII, nearly every cell, is copied by a plain loop: the native encoder costs
   * more per call than these short strings take. Says whether the text was all ASCII.
   */
  utf8Field(text: string, prefix = -1): boolean {
    this.room(5 + text.length * 3)
    const bytes = this.bytes
    const start = this.length + 4
    let at = start
    if (prefix >= 0) bytes[at++] = prefix
    const first = at
    let ascii = true
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i)
      if (code >= 0x80) {
        at = first + utf8.encodeInto(text, bytes.subarray(first)).written
        ascii = false
        break
      }
      bytes[at++] = code
    }
    this.view.setInt32(this.length, at - start, this.littleEndian)
    this.length = at
    return ascii
  }

  /** Bytes as they are. */
  append(bytes: Uint8Array): void {
    this.room(bytes.length)
    this.bytes.set(bytes, this.length)
    this.length += bytes.length
  }
}
