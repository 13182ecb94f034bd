import type { FileHandle } from "node:fs/promises"

/** Bytes read per call: large enough that reads cost nothing next to parsing. */
export const CHUNK_BYTES = 4 * 1024 * 1024

/** One line as bytes `buf[start, end)`, without its newline; valid only during the call. */
export type OnLine = (buf: Buffer, start: number, end: number) => void

export interface LinesRead {
  /** Bytes from `from` up to and including the last newline. */
  consumed: number
  /** What followed the last newline: a line still being written, or cut off by a crash. */
  rest: Buffer
}

/**
 * Calls `onLine` for every complete line between byte offsets `from` and `to` of `fd`.
 *
 * Lines are handed over as bytes, not strings: the caller decodes only what it needs, and no
 * character is ever cut in two at a chunk boundary, since a newline byte never occurs inside a
 * multi-byte UTF-8 character. The file is read in chunks, never held in memory whole.
 */
export async function readLines(fd: FileHandle, from: number, to: number, onLine: OnLine, chunkBytes = CHUNK_BYTES): Promise<LinesRead> {
  let buf = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, to - from)))
  let held = 0 // bytes at the start of `buf` after the last newline seen
  let pos = from
  let consumed = 0
  while (pos < to) {
    if (held === buf.length) {
      // One line longer than the buffer: grow it rather than split the line.
      const bigger = Buffer.allocUnsafe(buf.length * 2)
      buf.copy(bigger, 0, 0, held)
      buf = bigger
    }
    const { bytesRead } = await fd.read(buf, held, Math.min(buf.length - held, to - pos), pos)
    if (bytesRead === 0) break
    pos += bytesRead
    const end = held + bytesRead
    let start = 0
    // Only the new bytes can hold a newline: the held ones were searched already.
    for (let nl = buf.indexOf(0x0a, held); nl >= 0 && nl < end; nl = buf.indexOf(0x0a, start)) {
      onLine(buf, start, nl)
      start = nl + 1
    }
    consumed += start
    held = end - start
    if (start > 0 && held > 0) buf.copy(buf, 0, start, end)
  }
  return { consumed, rest: Buffer.from(buf.subarray(0, held)) }
}
