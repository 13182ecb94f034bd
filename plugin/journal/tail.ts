import type { JournalRecord } from "../protocol.js"
import { readLines } from "./lines.js"
import { decodeRecord, writerOf } from "./record.js"
import { isMissing, type JournalDeps } from "./types.js"

/**
 * Follows the live log for records other processes (e.g. the CLI) append, so a running server
 * acts on them without replaying. Each foreign record is handed out once, even when a writer
 * wrote its batch a second time after a rotation.
 */
export class Tail {
  /** Where reading continues in the live log, and which file (inode) that offset belongs to. */
  private offset = 0
  private ino = 0
  /** Foreign records found in a log this process rotated, not yet handed out. */
  private backlog: JournalRecord[] = []
  /** Highest sequence handed out per foreign writer. */
  private seen = new Map<string, number>()
  /**
   * Reading and a rotation both move `offset`; interleaved at their awaits, a read that started
   * on the old file would advance the offset into the new one. One at a time.
   */
  private lock: Promise<unknown> = Promise.resolve()

  constructor(
    private readonly deps: JournalDeps,
    private readonly path: string,
    /** This process's writer id: its own records are never handed out. */
    private readonly self: string,
  ) {}

  /** Continues from `offset` in the file with inode `ino` (where this process stands now). */
  follow(ino: number, offset: number): void {
    this.ino = ino
    this.offset = offset
  }

  /** Records appended by others since the last call, in order. Cheap when there are none: one `stat`. */
  read(): Promise<JournalRecord[]> {
    return this.exclusive(async () => {
      const out = this.backlog.splice(0)
      let st
      try {
        st = await this.deps.fs.stat(this.path)
      } catch {
        return this.fresh(out)
      }
      if (st.ino !== this.ino) {
        this.ino = st.ino
        this.offset = 0
      }
      if (st.size > this.offset) {
        let read
        try {
          read = await readForeign(this.deps, this.path, this.offset, st.size, this.self)
        } catch (err) {
          // Renamed away by another process since the `stat`: its compaction folds those records.
          if (isMissing(err)) return this.fresh(out)
          throw err
        }
        this.offset += read.consumed
        out.push(...read.records)
      }
      return this.fresh(out)
    })
  }

  /**
   * Runs `rotate`, which renames the live log away and starts a new one, with reads held: a read
   * in between would take the new file for the one it follows and skip the rest of the old one.
   * Then keeps what others appended to the old file since the last read, which otherwise would
   * only reach the snapshot, and follows the new log from its start.
   */
  rotate(rotate: () => Promise<{ rotated: string; ino: number }>): Promise<void> {
    return this.exclusive(async () => {
      const { rotated, ino } = await rotate()
      try {
        const st = await this.deps.fs.stat(rotated)
        if (st.ino === this.ino && st.size > this.offset)
          this.backlog.push(...(await readForeign(this.deps, rotated, this.offset, st.size, this.self)).records)
      } catch (err) {
        this.deps.log.log("warn", "could not read the rotated log for other writers' records", { error: String(err) })
      }
      this.follow(ino, 0)
    })
  }

  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn)
    this.lock = run.catch(() => {})
    return run
  }

  private fresh(records: JournalRecord[]): JournalRecord[] {
    return records.filter((r) => {
      if ((this.seen.get(r.w) ?? 0) >= r.s) return false
      this.seen.set(r.w, r.s)
      return true
    })
  }
}

/** Other writers' complete records between two offsets of a file, and the bytes consumed. */
async function readForeign(
  deps: JournalDeps,
  path: string,
  from: number,
  to: number,
  self: string,
): Promise<{ records: JournalRecord[]; consumed: number }> {
  const fd = await deps.fs.open(path, "r")
  try {
    const records: JournalRecord[] = []
    const { consumed } = await readLines(fd, from, to, (buf, start, end) => {
      // This process's own records are most of the file: skip them by their header alone.
      if (start >= end || writerOf(buf, start, end) === self) return
      // A damaged line is counted by replay; here it is simply not acted on.
      const rec = decodeRecord(buf, start, end)
      if (rec && rec.w !== self) records.push(rec)
    })
    return { records, consumed }
  } finally {
    await fd.close()
  }
}
