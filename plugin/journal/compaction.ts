import { join } from "node:path"
import { JOURNAL_VERSION } from "../protocol.js"
import { compactingFiles, foldFile, loadSnapshot } from "./replay.js"
import type { Tail } from "./tail.js"
import { LOG, SNAPSHOT, type JournalDeps, type Reducer, type Snapshot } from "./types.js"
import type { LogWriter } from "./writer.js"

/**
 * Keeps the journal bounded without ever being in a state a crash could damage:
 *
 * 1. `journal.jsonl` is renamed to `journal.<time>.<writer>.<n>.compacting` and a new log started;
 * 2. the snapshot plus every renamed file are folded into a new `snapshot.json` (written to a temp
 *    file, synced, renamed), which names the files it absorbed;
 * 3. only then are those files deleted.
 *
 * A crash before 2 leaves the old snapshot plus the renamed files, which replay folds in; a crash
 * after it leaves the new snapshot, whose list of absorbed files tells replay to skip and remove
 * them. Writes of this process wait while this runs; a writer in another process that wrote into
 * the renamed file notices and writes its batch again (see writer.ts).
 */
export class Compactor<S> {
  private running: Promise<void> | undefined
  /** Keeps rotated names unique within one millisecond. */
  private rotations = 0

  constructor(
    private readonly deps: JournalDeps,
    private readonly dir: string,
    private readonly reducer: Reducer<S>,
    private readonly writer: LogWriter,
    private readonly tail: Tail,
  ) {}

  /** The compaction under way, if any. */
  get current(): Promise<void> | undefined {
    return this.running
  }

  compact(): Promise<void> {
    this.running ??= this.writer.exclusive(() => this.rotateAndFold()).finally(() => {
      this.running = undefined
    })
    return this.running
  }

  private async rotateAndFold(): Promise<void> {
    const { deps, dir } = this
    // Time first so files sort oldest first.
    const rotated = `journal.${String(deps.clock.now()).padStart(15, "0")}.${this.writer.id}.${String(++this.rotations).padStart(6, "0")}.compacting`
    await this.tail.rotate(async () => {
      await deps.fs.rename(join(dir, LOG), join(dir, rotated))
      await this.writer.reopen()
      return { rotated: join(dir, rotated), ino: this.writer.ino }
    })
    const { state, covered, absorbed } = await this.fold()
    this.reducer.prune?.(state, deps.clock.now())
    const snap: Snapshot = { v: JOURNAL_VERSION, covered, absorbed, state: this.reducer.serialize(state), time: deps.clock.now() }
    const tmp = join(dir, `${SNAPSHOT}.${this.writer.id}.tmp`)
    const fd = await deps.fs.open(tmp, "w")
    try {
      await fd.writeFile(JSON.stringify(snap))
      await fd.sync()
    } finally {
      await fd.close()
    }
    await deps.fs.rename(tmp, join(dir, SNAPSHOT))
    await this.syncDir()
    for (const f of absorbed) await deps.fs.unlink(join(dir, f)).catch(() => {})
  }

  /** Snapshot + rotated files (not the live log). */
  private async fold(): Promise<{ state: S; covered: Record<string, number>; absorbed: string[] }> {
    const ctx = await loadSnapshot(this.deps, this.dir, this.reducer)
    const files = await compactingFiles(this.deps, this.dir, ctx.absorbed)
    const touched = new Set<string>()
    for (const f of files) await foldFile(this.deps, join(this.dir, f), this.reducer, ctx, touched)
    // A batch is written again only right after a rotation, so writers absent from the logs
    // folded now cannot send duplicates any more: forget them (one entry per CLI call adds up).
    const covered: Record<string, number> = {}
    for (const w of touched) covered[w] = ctx.covered[w]!
    // Everything we wrote before the rotation is in those files; what we appended since waits in
    // the queue and will reach the new log. So the bound is the last record written, not the last
    // sequence number handed out: that one would make queued records look like duplicates.
    covered[this.writer.id] = ctx.covered[this.writer.id] ?? this.writer.written
    return { state: ctx.state, covered, absorbed: files }
  }

  private async syncDir(): Promise<void> {
    // The renames are only durable once the directory itself is synced.
    const fd = await this.deps.fs.open(this.dir, "r")
    try {
      await fd.sync()
    } catch {
      // Some file systems refuse to sync a directory; the rename is still atomic there.
    } finally {
      await fd.close()
    }
  }
}
