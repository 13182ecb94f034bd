import type { FileHandle } from "node:fs/promises"
import { JOURNAL_VERSION, type JournalEvent } from "../protocol.js"
import { encodeRecord } from "./record.js"
import type { JournalDeps } from "./types.js"

/**
 * Appends records to the live log under the durability rule: `append()` resolves only after the
 * batch holding the record was written with one `write(2)` on an `O_APPEND` descriptor and, with
 * `fsync`, `fdatasync`ed. Records appended in the same tick, or while a write is in flight, share
 * one write and one sync (group commit): a sync costs the same for one record or a thousand.
 *
 * One write per batch is also what lets several processes append to the same file: lines never
 * interleave. Each record carries this writer's id and a sequence number, so a batch written twice
 * (see `writeBatch`) is replayed once.
 */

type Pending = { line: string; seq: number; resolve: () => void; reject: (e: unknown) => void }

export interface WriterOptions {
  fsync: boolean
  /** Largest single write; bigger batches are split at line boundaries. */
  maxWriteBytes: number
}

export class LogWriter {
  private fd: FileHandle | undefined
  private fdIno = 0
  private seqNo = 0
  private writtenSeq = 0
  private queue: Pending[] = []
  private writing: Promise<void> | undefined
  /** The one batch write under way, if any. */
  private inFlight: Promise<void> | undefined
  private scheduled = false
  private liveBytes = 0
  private needsNewline = false
  private closed = false
  /** Set while something that must not overlap a write (a rotation) runs; batches wait for it. */
  private hold: Promise<void> | undefined

  constructor(
    private readonly deps: JournalDeps,
    private readonly path: string,
    /** This writer's id, stamped on every record. */
    readonly id: string,
    private readonly opts: WriterOptions,
  ) {}

  /** Bytes in the live log as far as this writer knows (its size when opened plus its own writes). */
  get bytes(): number {
    return this.liveBytes
  }

  /** Inode of the file the descriptor names: tells whether the log was rotated since. */
  get ino(): number {
    return this.fdIno
  }

  /**
   * The sequence number of the last record written. Records appended after it may still wait in
   * the queue, so this, not the last number handed out, bounds what a rotated file can hold.
   */
  get written(): number {
    return this.writtenSeq
  }

  append(event: JournalEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal is closed"))
    const seq = ++this.seqNo
    const line = encodeRecord({ v: JOURNAL_VERSION, w: this.id, s: seq, t: this.deps.clock.now(), e: event })
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, seq, resolve, reject })
      if (!this.scheduled && !this.writing) {
        this.scheduled = true
        // A microtask, not a timer: every append of this tick joins the batch, and nothing waits
        // on a clock (so fake time in tests needs no nudging).
        queueMicrotask(() => {
          this.scheduled = false
          void this.pump()
        })
      }
    })
  }

  /** Resolves when everything appended so far has been written (or has failed). */
  async flush(): Promise<void> {
    while (this.writing || this.queue.length || this.scheduled) {
      if (this.writing) await this.writing
      else if (this.queue.length) await this.pump()
      else await Promise.resolve()
    }
  }

  /**
   * Runs `fn` once the batch being written (if any) is done, and holds every later batch until
   * `fn` settles. Waits only for the batch in flight, not the whole queue: the queue waits for
   * `fn`, so waiting for it here would wait for ourselves.
   */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = (async () => {
      while (this.inFlight) await this.inFlight.catch(() => {})
      return fn()
    })()
    const hold = run.then(
      () => {},
      () => {},
    )
    this.hold = hold
    void hold.then(() => {
      if (this.hold === hold) this.hold = undefined
    })
    return run
  }

  /** (Re)opens the live log for appending, e.g. after it was renamed away. */
  async reopen(): Promise<FileHandle> {
    await this.fd?.close().catch(() => {})
    // Read-append: the last byte is read through this same handle. Opening the path again to
    // read it would race another process's compaction renaming the file away in between.
    const fd = await this.deps.fs.open(this.path, "a+")
    const st = await fd.stat()
    this.fd = fd
    this.fdIno = st.ino
    this.liveBytes = st.size
    this.needsNewline = st.size > 0 && !(await this.endsWithNewline(fd, st.size))
    return fd
  }

  async close(): Promise<void> {
    await this.flush()
    this.closed = true
    await this.fd?.close()
    this.fd = undefined
  }

  private pump(): Promise<void> {
    if (this.writing) return this.writing
    this.writing = (async () => {
      try {
        while (this.queue.length) {
          while (this.hold) await this.hold
          const batch = this.takeBatch()
          try {
            this.inFlight = this.writeBatch(batch.map((p) => p.line).join(""))
            await this.inFlight
            this.writtenSeq = batch[batch.length - 1]!.seq
            for (const p of batch) p.resolve()
          } catch (err) {
            for (const p of batch) p.reject(err)
          } finally {
            this.inFlight = undefined
          }
        }
      } finally {
        this.writing = undefined
      }
    })()
    return this.writing
  }

  private takeBatch(): Pending[] {
    let bytes = 0
    let n = 0
    while (n < this.queue.length) {
      bytes += this.queue[n]!.line.length
      if (n > 0 && bytes > this.opts.maxWriteBytes) break
      n++
    }
    return this.queue.splice(0, n)
  }

  private async writeBatch(text: string): Promise<void> {
    if (this.needsNewline) {
      text = "\n" + text
      this.needsNewline = false
    }
    const buf = Buffer.from(text)
    await this.writeAll(buf)
    // Another process may have rotated the log while we wrote: our descriptor then names the
    // renamed file. Write the batch again into the new log; replay drops the duplicate.
    if (await this.rotatedUnderUs()) {
      await this.reopen()
      await this.writeAll(buf)
    }
    this.liveBytes += buf.length
  }

  private async writeAll(buf: Buffer): Promise<void> {
    const fd = this.fd ?? (await this.reopen())
    const { bytesWritten } = await fd.write(buf, 0, buf.length)
    if (bytesWritten !== buf.length) {
      // A short write on a regular file means the disk is full; the tail is a torn line that
      // replay will skip, and the caller learns the records were not stored.
      this.needsNewline = true
      throw new Error(`journal write was short (${bytesWritten} of ${buf.length} bytes): is the disk full?`)
    }
    if (this.opts.fsync) await fd.datasync()
  }

  private async rotatedUnderUs(): Promise<boolean> {
    try {
      const st = await this.deps.fs.stat(this.path)
      return st.ino !== this.fdIno
    } catch {
      return true
    }
  }

  /** A log left ending mid-line (a crash) must not glue our first record onto that fragment. */
  private async endsWithNewline(fd: FileHandle, size: number): Promise<boolean> {
    const last = Buffer.alloc(1)
    await fd.read(last, 0, 1, size - 1)
    return last[0] === 0x0a
  }
}
