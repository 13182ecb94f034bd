import { join } from "node:path"
import type { Deps } from "../deps.js"

/**
 * An append-only JSONL file for records nobody waits on (tool calls, message tags): `append`
 * returns at once, lines are written in batches, a write failure is logged and never thrown.
 * Records that must survive a crash belong in the journal instead.
 */
export class JsonlLog {
  private queue: string[] = []
  private writing: Promise<void> | undefined

  constructor(
    private readonly deps: Pick<Deps, "fs" | "log">,
    readonly path: string,
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
}
