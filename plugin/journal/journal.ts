import { join } from "node:path"
import type { FileHandle } from "node:fs/promises"
import type { Deps } from "../deps.js"
import { JOURNAL_VERSION, JournalRecord, type JournalEvent } from "../protocol.js"

/**
 * Durable append-only event log (JSONL) with group commit, snapshots and crash-safe compaction.
 *
 * Durability rule: `append()` resolves only after the batch holding the record has been written
 * with one `write(2)` on an `O_APPEND` descriptor and, when `fsync` is on (the default), flushed
 * with `fdatasync`. Callers acknowledge an action (return a task id, say a question was sent)
 * only after awaiting `append()`. Records appended in the same tick, or while a write is in
 * flight, share one write and one sync (group commit).
 *
 * Several processes may append to the same journal: each batch is one `O_APPEND` write, so lines
 * never interleave; every record carries its writer id and sequence number so a record written
 * twice (see rotation below) is replayed once.
 *
 * Compaction: `journal.jsonl` is renamed to `journal.<time>.<writer>.<n>.compacting`, a new log is
 * started, and the snapshot plus the renamed file(s) are folded into a new `snapshot.json`
 * (written to a temp file, synced, renamed). Only then are the renamed files deleted. A crash at
 * any step leaves either the old snapshot plus the renamed files (replayed on open) or the new
 * snapshot (which names the files it absorbed, so they are skipped and removed). A writer in
 * another process that wrote into the renamed file after the rotation notices (its descriptor no
 * longer names `journal.jsonl`) and writes the batch again into the new log.
 */

export interface Reducer<S> {
  /** A fresh, empty state. */
  init(): S
  /** Folds one event into the state (may mutate and return it). */
  apply(state: S, record: JournalRecord): S
  /** JSON-safe form for the snapshot. */
  serialize(state: S): unknown
  /** Optional: drops what no longer needs keeping before a snapshot (e.g. old finished work). */
  prune?(state: S, now: number): void
  /** Inverse of `serialize`; throws on a snapshot it cannot read. */
  deserialize(data: unknown): S
}

export interface JournalOptions {
  /** Folder holding `journal.jsonl` and `snapshot.json`; created if missing. */
  dir: string
  /** Compact once the live log grows past this many bytes. Default 8 MiB. */
  maxBytes?: number
  /** `fdatasync` each batch before acknowledging it. Default true. */
  fsync?: boolean
  /** Largest single write, in bytes; bigger batches are split at line boundaries. Default 1 MiB. */
  maxWriteBytes?: number
}

export interface ReplayReport {
  /** Records folded into the state (snapshot not counted). */
  records: number
  /** Whether a snapshot was loaded. */
  snapshot: boolean
  /** Lines that were not valid records (bad JSON, wrong shape, unknown version). */
  corrupt: number
  /** 1 if the log ended in a partial line (a crash mid-write), else 0. */
  torn: number
  /** Records seen twice (a batch re-written after a concurrent compaction). */
  duplicates: number
  /** Left-over files of an interrupted compaction that were replayed. */
  recoveredCompactions: number
  durationMs: number
}

interface Snapshot {
  v: number
  /** Highest sequence number folded in, per writer. */
  covered: Record<string, number>
  /** Rotated log files whose records the snapshot contains. */
  absorbed: string[]
  state: unknown
  time: number
}

const LOG = "journal.jsonl"
const SNAPSHOT = "snapshot.json"
const COMPACTING = /^journal\.\d+\.[\w-]+(\.\d+)?\.compacting$/

type Pending = { line: string; resolve: () => void; reject: (e: unknown) => void }

export class Journal<S> {
  private fd: FileHandle | undefined
  private fdIno = 0
  private seq = 0
  private queue: Pending[] = []
  private writing: Promise<void> | undefined
  /** The one batch write under way, if any. */
  private inFlight: Promise<void> | undefined
  private scheduled = false
  private liveBytes = 0
  private needsNewline = false
  private compacting: Promise<void> | undefined
  private closed = false
  private rotations = 0
  /** Where `readForeign` continues in the live log, and which file that offset belongs to. */
  private tailOffset = 0
  private tailIno = 0
  /** Foreign records found in a log this process rotated, not yet handed out. */
  private foreignBacklog: JournalRecord[] = []
  /** Highest sequence handed out per foreign writer (a rewritten batch is handed out once). */
  private foreignSeen = new Map<string, number>()
  readonly writer: string
  readonly maxBytes: number
  readonly fsync: boolean
  private readonly maxWriteBytes: number

  private constructor(
    private readonly deps: Pick<Deps, "fs" | "clock" | "ids" | "log">,
    readonly dir: string,
    private readonly reducer: Reducer<S>,
    opts: JournalOptions,
  ) {
    this.writer = deps.ids.id("w")
    this.maxBytes = opts.maxBytes ?? 8 * 1024 * 1024
    this.fsync = opts.fsync ?? true
    this.maxWriteBytes = opts.maxWriteBytes ?? 1024 * 1024
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1024)
      throw new TypeError(`Expected \`maxBytes\` to be an integer ≥ 1024, got \`${opts.maxBytes}\``)
  }

  /** Opens (creating if needed) a journal and replays it. */
  static async open<S>(
    deps: Pick<Deps, "fs" | "clock" | "ids" | "log">,
    reducer: Reducer<S>,
    opts: JournalOptions,
  ): Promise<{ journal: Journal<S>; state: S; report: ReplayReport }> {
    const j = new Journal(deps, opts.dir, reducer, opts)
    await deps.fs.mkdir(opts.dir, { recursive: true })
    const { state, report } = await j.replay()
    await j.reopen()
    j.tailOffset = j.liveBytes
    j.tailIno = j.fdIno
    return { journal: j, state, report }
  }

  /** Replays a journal without opening it for writing (for readers such as the CLI). */
  static async read<S>(
    deps: Pick<Deps, "fs" | "clock" | "ids" | "log">,
    reducer: Reducer<S>,
    dir: string,
  ): Promise<{ state: S; report: ReplayReport }> {
    const j = new Journal(deps, dir, reducer, { dir })
    try {
      await deps.fs.stat(dir)
    } catch {
      return { state: reducer.init(), report: { records: 0, snapshot: false, corrupt: 0, torn: 0, duplicates: 0, recoveredCompactions: 0, durationMs: 0 } }
    }
    return j.replay()
  }

  get path(): string {
    return join(this.dir, LOG)
  }

  /** Appends one event; resolves once it is durable under the rule above. */
  append(event: JournalEvent): Promise<void> {
    if (this.closed) return Promise.reject(new Error("journal is closed"))
    const record: JournalRecord = {
      v: JOURNAL_VERSION,
      w: this.writer,
      s: ++this.seq,
      t: this.deps.clock.now(),
      e: event,
    }
    const line = JSON.stringify(record) + "\n"
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ line, resolve, reject })
      if (!this.scheduled && !this.writing) {
        this.scheduled = true
        // Let every append of this tick join the batch.
        queueMicrotask(() => {
          this.scheduled = false
          void this.pump()
        })
      }
    })
  }

  /** Resolves when everything appended so far is durable. */
  async flush(): Promise<void> {
    while (this.writing || this.queue.length || this.scheduled || this.compacting) {
      if (this.writing) await this.writing
      else if (this.compacting) await this.compacting
      else if (this.queue.length) await this.pump()
      else await Promise.resolve()
    }
  }

  /**
   * Records other processes (e.g. the CLI) appended since the last call, in order. Cheap when
   * there are none: one `stat`. Records in a log that was rotated in between are found by the
   * compaction that rotated it, not here.
   */
  async readForeign(): Promise<JournalRecord[]> {
    const out = this.foreignBacklog.splice(0)
    let st
    try {
      st = await this.deps.fs.stat(this.path)
    } catch {
      return this.fresh(out)
    }
    if (st.ino !== this.tailIno) {
      this.tailIno = st.ino
      this.tailOffset = 0
    }
    if (st.size > this.tailOffset) {
      const { records, consumed } = await this.readFrom(this.path, this.tailOffset, st.size)
      this.tailOffset += consumed
      out.push(...records)
    }
    return this.fresh(out)
  }

  private fresh(records: JournalRecord[]): JournalRecord[] {
    return records.filter((r) => {
      if ((this.foreignSeen.get(r.w) ?? 0) >= r.s) return false
      this.foreignSeen.set(r.w, r.s)
      return true
    })
  }

  /** Other writers' complete records between two offsets of a file, and the bytes consumed. */
  private async readFrom(path: string, from: number, to: number): Promise<{ records: JournalRecord[]; consumed: number }> {
    const fd = await this.deps.fs.open(path, "r")
    const records: JournalRecord[] = []
    try {
      const buf = Buffer.alloc(Math.max(0, to - from))
      const { bytesRead } = await fd.read(buf, 0, buf.length, from)
      const text = buf.toString("utf8", 0, bytesRead)
      const end = text.lastIndexOf("\n")
      if (end < 0) return { records, consumed: 0 }
      for (const line of text.slice(0, end).split("\n")) {
        if (!line) continue
        try {
          const r = JournalRecord.safeParse(JSON.parse(line))
          if (r.success && r.data.w !== this.writer) records.push(r.data)
        } catch {
          // A damaged line: replay counts it; here it is simply not acted on.
        }
      }
      return { records, consumed: Buffer.byteLength(text.slice(0, end + 1)) }
    } finally {
      await fd.close()
    }
  }

  /** Rotates the log and folds everything on disk into a fresh snapshot. */
  compact(): Promise<void> {
    if (!this.compacting) {
      this.compacting = (async () => {
        // Only the batch being written is waited for: the pump waits for compaction between
        // batches, so waiting for the whole pump here would wait for ourselves.
        while (this.inFlight) await this.inFlight.catch(() => {})
        await this.rotateAndFold()
      })().finally(() => {
        this.compacting = undefined
      })
    }
    return this.compacting
  }

  async close(): Promise<void> {
    await this.flush()
    this.closed = true
    await this.fd?.close()
    this.fd = undefined
  }

  // -------------------------------------------------------------------------------------------

  private pump(): Promise<void> {
    if (this.writing) return this.writing
    this.writing = (async () => {
      try {
        while (this.queue.length) {
          if (this.compacting) await this.compacting
          const batch = this.takeBatch()
          try {
            this.inFlight = this.writeBatch(batch.map((p) => p.line).join(""))
            await this.inFlight
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
      if (this.liveBytes > this.maxBytes && !this.compacting) {
        this.compact().catch((err) =>
          this.deps.log.log("error", "journal compaction failed; the log keeps growing", { error: String(err) }),
        )
      }
    })()
    return this.writing
  }

  private takeBatch(): Pending[] {
    let bytes = 0
    let n = 0
    while (n < this.queue.length) {
      bytes += this.queue[n]!.line.length
      if (n > 0 && bytes > this.maxWriteBytes) break
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
    if (this.fsync) await fd.datasync()
  }

  private async rotatedUnderUs(): Promise<boolean> {
    try {
      const st = await this.deps.fs.stat(this.path)
      return st.ino !== this.fdIno
    } catch {
      return true
    }
  }

  private async reopen(): Promise<FileHandle> {
    await this.fd?.close().catch(() => {})
    const fd = await this.deps.fs.open(this.path, "a")
    const st = await fd.stat()
    this.fd = fd
    this.fdIno = st.ino
    this.liveBytes = st.size
    if (st.size > 0) {
      const last = Buffer.alloc(1)
      const rd = await this.deps.fs.open(this.path, "r")
      try {
        await rd.read(last, 0, 1, st.size - 1)
      } finally {
        await rd.close()
      }
      this.needsNewline = last[0] !== 0x0a
    } else {
      this.needsNewline = false
    }
    return fd
  }

  private async rotateAndFold(): Promise<void> {
    // Time first so files sort oldest first; the counter keeps names unique within a millisecond.
    const rotated = `journal.${String(this.deps.clock.now()).padStart(15, "0")}.${this.writer}.${String(++this.rotations).padStart(6, "0")}.compacting`
    await this.deps.fs.rename(this.path, join(this.dir, rotated))
    await this.reopen()
    // Records other processes appended since the last readForeign would otherwise only reach
    // the snapshot: keep them to hand out, then follow the new log from its start.
    try {
      const st = await this.deps.fs.stat(join(this.dir, rotated))
      if (st.ino === this.tailIno && st.size > this.tailOffset)
        this.foreignBacklog.push(...(await this.readFrom(join(this.dir, rotated), this.tailOffset, st.size)).records)
    } catch (err) {
      this.deps.log.log("warn", "could not read the rotated log for other writers' records", { error: String(err) })
    }
    this.tailIno = this.fdIno
    this.tailOffset = 0
    const { state, covered, absorbed } = await this.fold()
    const snap: Snapshot = {
      v: JOURNAL_VERSION,
      covered,
      absorbed,
      state: (this.reducer.prune?.(state, this.deps.clock.now()), this.reducer.serialize(state)),
      time: this.deps.clock.now(),
    }
    const tmp = join(this.dir, `${SNAPSHOT}.${this.writer}.tmp`)
    const fd = await this.deps.fs.open(tmp, "w")
    try {
      await fd.writeFile(JSON.stringify(snap))
      await fd.sync()
    } finally {
      await fd.close()
    }
    await this.deps.fs.rename(tmp, join(this.dir, SNAPSHOT))
    await syncDir(this.deps, this.dir)
    for (const f of absorbed) await this.deps.fs.unlink(join(this.dir, f)).catch(() => {})
  }

  /** Snapshot + rotated files (not the live log), for compaction. */
  private async fold(): Promise<{ state: S; covered: Record<string, number>; absorbed: string[] }> {
    const ctx = await this.loadSnapshot()
    const files = await this.compactingFiles(ctx.absorbed)
    const before = ctx.covered
    ctx.covered = { ...before }
    const touched = new Set<string>()
    for (const f of files) await this.foldFile(join(this.dir, f), ctx, touched)
    // A batch is written again only right after a rotation, so writers absent from the logs
    // folded now cannot send duplicates any more: forget them (one entry per CLI call adds up).
    const covered: Record<string, number> = {}
    for (const w of touched) covered[w] = ctx.covered[w]!
    covered[this.writer] = ctx.covered[this.writer] ?? this.seq
    return { state: ctx.state, covered, absorbed: files }
  }

  private async replay(): Promise<{ state: S; report: ReplayReport }> {
    const started = this.deps.clock.monotonic()
    const ctx = await this.loadSnapshot()
    // Files a snapshot already absorbed are left-overs of a crash after the snapshot was written.
    for (const f of ctx.absorbed) await this.deps.fs.unlink(join(this.dir, f)).catch(() => {})
    const files = await this.compactingFiles(ctx.absorbed)
    for (const f of files) await this.foldFile(join(this.dir, f), ctx)
    await this.foldFile(this.path, ctx)
    return {
      state: ctx.state,
      report: {
        records: ctx.records,
        snapshot: ctx.fromSnapshot,
        corrupt: ctx.corrupt,
        torn: ctx.torn,
        duplicates: ctx.duplicates,
        recoveredCompactions: files.length,
        durationMs: this.deps.clock.monotonic() - started,
      },
    }
  }

  private async compactingFiles(absorbed: readonly string[]): Promise<string[]> {
    const names = await this.deps.fs.readdir(this.dir)
    const skip = new Set(absorbed)
    return names.filter((n) => COMPACTING.test(n) && !skip.has(n)).sort()
  }

  private async loadSnapshot(): Promise<FoldContext<S>> {
    const ctx: FoldContext<S> = {
      state: this.reducer.init(),
      covered: {},
      absorbed: [],
      records: 0,
      corrupt: 0,
      torn: 0,
      duplicates: 0,
      fromSnapshot: false,
    }
    let text: string
    try {
      text = await this.deps.fs.readFile(join(this.dir, SNAPSHOT), "utf8")
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return ctx
      throw err
    }
    const snap = JSON.parse(text) as Snapshot
    if (snap.v !== JOURNAL_VERSION)
      throw new Error(`${join(this.dir, SNAPSHOT)} has version ${snap.v}; this NSO reads version ${JOURNAL_VERSION}`)
    ctx.state = this.reducer.deserialize(snap.state)
    ctx.covered = { ...snap.covered }
    ctx.absorbed = snap.absorbed ?? []
    ctx.fromSnapshot = true
    return ctx
  }

  private async foldFile(path: string, ctx: FoldContext<S>, touched?: Set<string>): Promise<void> {
    let fd: FileHandle
    try {
      fd = await this.deps.fs.open(path, "r")
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return
      throw err
    }
    try {
      // Stream in chunks so a large log does not need twice its size in memory.
      const chunk = Buffer.alloc(4 * 1024 * 1024)
      let carry = ""
      for (;;) {
        const { bytesRead } = await fd.read(chunk, 0, chunk.length, null)
        if (bytesRead === 0) break
        const text = carry + chunk.toString("utf8", 0, bytesRead)
        const lines = text.split("\n")
        carry = lines.pop()!
        for (const line of lines) this.foldLine(line, ctx, false, touched)
      }
      if (carry.length) {
        // A final line without its newline is a write cut off by a crash. If it happens to parse,
        // it was complete except for the newline, and keeping it loses nothing.
        if (!this.foldLine(carry, ctx, true, touched)) ctx.torn++
      }
    } finally {
      await fd.close()
    }
  }

  /** Returns false if the line was not a valid record. */
  private foldLine(line: string, ctx: FoldContext<S>, quiet = false, touched?: Set<string>): boolean {
    if (!line) return true
    let raw: unknown
    try {
      raw = JSON.parse(line)
    } catch {
      if (!quiet) ctx.corrupt++
      return false
    }
    const r = JournalRecord.safeParse(raw)
    if (!r.success) {
      if (!quiet) ctx.corrupt++
      return false
    }
    const rec = r.data
    const seen = ctx.covered[rec.w]
    if (seen !== undefined && rec.s <= seen) {
      ctx.duplicates++
      return true
    }
    ctx.covered[rec.w] = rec.s
    touched?.add(rec.w)
    ctx.state = this.reducer.apply(ctx.state, rec)
    ctx.records++
    return true
  }
}

interface FoldContext<S> {
  state: S
  covered: Record<string, number>
  absorbed: string[]
  records: number
  corrupt: number
  torn: number
  duplicates: number
  fromSnapshot: boolean
}

async function syncDir(deps: Pick<Deps, "fs">, dir: string): Promise<void> {
  const fd = await deps.fs.open(dir, "r")
  try {
    await fd.sync()
  } catch {
    // Some file systems refuse to sync a directory; the rename is still atomic there.
  } finally {
    await fd.close()
  }
}
