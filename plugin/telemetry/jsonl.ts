import { join } from "node:path"
import type { Deps } from "../deps.js"

/**
 * An append-only JSONL file for records nobody waits on (tool calls, message tags): `append`
 * returns at once, lines are written in batches, a write failure is logged and never thrown.
 * Records that must survive a crash belong in the journal instead.
 */
export interface JsonlOptions {
  /**
   * Past this size (bytes) the file is renamed `<path>.1` (the older ones shift to `.2`, …) and a
   * new one is started, so a log never grows without bound. Default: no rotation.
   */
  maxBytes?: number
  /** Rotated files kept (default 3); the oldest beyond is deleted. */
  keep?: number
}

export class JsonlLog {
  private queue: string[] = []
  private writing: Promise<void> | undefined
  /** Bytes in the current file, once known. */
  private size: number | undefined

  constructor(
    private readonly deps: Pick<Deps, "fs" | "log">,
    readonly path: string,
    private readonly opts: JsonlOptions = {},
  ) {}

  append(record: unknown): void {
    this.queue.push(JSON.stringify(record) + "\n")
    this.writing ??= this.drain()
  }

  /** Resolves when every queued line is written. */
  async flush(): Promise<void> {
    while (this.writing) await this.writing
  }

  private async drain(): Promise<void> {
    // One tick of grace: appends of the same tick share one write.
    await Promise.resolve()
    try {
      while (this.queue.length) {
        const text = this.queue.splice(0).join("")
        if (this.opts.maxBytes) await this.rotateIfFull(Buffer.byteLength(text))
        try {
          await this.deps.fs.appendFile(this.path, text)
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err
          await this.deps.fs.mkdir(join(this.path, ".."), { recursive: true })
          await this.deps.fs.appendFile(this.path, text)
        }
      }
    } catch (err) {
      this.deps.log.log("warn", "could not write a log file", { path: this.path, error: String(err) })
    } finally {
      this.writing = undefined
    }
  }

  private async rotateIfFull(adding: number): Promise<void> {
    this.size ??= await this.deps.fs.stat(this.path).then((s) => s.size, () => 0)
    if (this.size > 0 && this.size + adding > this.opts.maxBytes!) {
      const keep = this.opts.keep ?? 3
      await this.deps.fs.unlink(`${this.path}.${keep}`).catch(() => {})
      for (let i = keep - 1; i >= 1; i--) await this.deps.fs.rename(`${this.path}.${i}`, `${this.path}.${i + 1}`).catch(() => {})
      await this.deps.fs.rename(this.path, `${this.path}.1`).catch(() => {})
      this.size = 0
    }
    this.size += adding
  }
}
