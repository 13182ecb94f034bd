import { StringDecoder } from "node:string_decoder"
import type { Fs } from "../deps.js"

/**
 * Reads the lines appended to a JSONL file since the last call (the messaging audit,
 * messages.jsonl). A file that shrank (rotated, replaced) is read again from the start. The first
 * call reads at most the last `firstBytes` of it: the page shows the newest messages only.
 */
export class JsonlTail {
  private offset: number | undefined
  private rest = ""
  /** A character cut between two reads is completed by the next one. */
  private decoder = new StringDecoder("utf8")

  constructor(
    private readonly fs: Pick<Fs, "open" | "stat">,
    private readonly path: string,
    private readonly firstBytes = 512 * 1024,
  ) {}

  async read(): Promise<Record<string, unknown>[]> {
    let size: number
    try {
      size = (await this.fs.stat(this.path)).size
    } catch {
      return []
    }
    let from = this.offset ?? Math.max(0, size - this.firstBytes)
    const skipFirst = this.offset === undefined && from > 0
    if (size < from) {
      from = 0
      this.rest = ""
      this.decoder = new StringDecoder("utf8")
    }
    if (size === from) return []
    const fh = await this.fs.open(this.path, "r")
    let text: string
    try {
      const buf = Buffer.alloc(size - from)
      const { bytesRead } = await fh.read(buf, 0, buf.length, from)
      text = this.decoder.write(buf.subarray(0, bytesRead))
      this.offset = from + bytesRead
    } finally {
      await fh.close()
    }
    const lines = (this.rest + text).split("\n")
    this.rest = lines.pop() ?? ""
    if (skipFirst) lines.shift()
    const out: Record<string, unknown>[] = []
    for (const line of lines) {
      if (!line.trim()) continue
      try {
        const v: unknown = JSON.parse(line)
        if (v && typeof v === "object") out.push(v as Record<string, unknown>)
      } catch {
        // A damaged line: skipped, as every NSO log reader does.
      }
    }
    return out
  }
}
