import { join } from "node:path"
import type { JournalEvent, JournalRecord } from "../protocol.js"
import { Compactor } from "./compaction.js"
import { emptyReport, replay } from "./replay.js"
import { Tail } from "./tail.js"
import { LOG, type JournalDeps, type JournalOptions, type Reducer, type ReplayReport } from "./types.js"
import { LogWriter } from "./writer.js"

export type { JournalDeps, JournalOptions, Reducer, ReplayReport } from "./types.js"

/**
 * Durable append-only event log (JSONL): the single source of truth, replayed into state on
 * start. This class only puts the parts together and owns none of their rules:
 *
 * - writer.ts: append with group commit and fsync (the durability rule);
 * - replay.ts: snapshot + logs → state, tolerating torn and corrupt lines and duplicates;
 * - compaction.ts: rotation and snapshot, safe against a crash at any step;
 * - tail.ts: records other processes append while this one runs;
 * - record.ts: the line format (lines.ts reads lines, fastcheck.ts makes validation cheap).
 */
export class Journal<S> {
  /** This handle's writer id, stamped on every record it appends. */
  readonly writer: string
  readonly maxBytes: number
  readonly fsync: boolean
  private readonly out: LogWriter
  private readonly tail: Tail
  private readonly compactor: Compactor<S>

  private constructor(
    private readonly deps: JournalDeps,
    readonly dir: string,
    reducer: Reducer<S>,
    opts: JournalOptions,
  ) {
    this.writer = deps.ids.id("w")
    this.maxBytes = opts.maxBytes ?? 8 * 1024 * 1024
    this.fsync = opts.fsync ?? true
    if (!Number.isInteger(this.maxBytes) || this.maxBytes < 1024)
      throw new TypeError(`Expected \`maxBytes\` to be an integer ≥ 1024, got \`${opts.maxBytes}\``)
    this.out = new LogWriter(deps, this.path, this.writer, { fsync: this.fsync, maxWriteBytes: opts.maxWriteBytes ?? 1024 * 1024 })
    this.tail = new Tail(deps, this.path, this.writer)
    this.compactor = new Compactor(deps, dir, reducer, this.out, this.tail)
  }

  /** Opens (creating if needed) a journal and replays it. */
  static async open<S>(
    deps: JournalDeps,
    reducer: Reducer<S>,
    opts: JournalOptions,
  ): Promise<{ journal: Journal<S>; state: S; report: ReplayReport }> {
    const j = new Journal(deps, opts.dir, reducer, opts)
    await deps.fs.mkdir(opts.dir, { recursive: true })
    const { state, report } = await replay(deps, opts.dir, reducer)
    await j.out.reopen()
    // Everything up to here was replayed: only what others append from now on is news.
    j.tail.follow(j.out.ino, j.out.bytes)
    return { journal: j, state, report }
  }

  /** Replays a journal without opening it for writing (for readers such as the CLI). */
  static async read<S>(deps: JournalDeps, reducer: Reducer<S>, dir: string): Promise<{ state: S; report: ReplayReport }> {
    try {
      await deps.fs.stat(dir)
    } catch {
      return { state: reducer.init(), report: emptyReport() }
    }
    return replay(deps, dir, reducer)
  }

  get path(): string {
    return join(this.dir, LOG)
  }

  /** Appends one event; resolves once it is durable under the rule in writer.ts. */
  append(event: JournalEvent): Promise<void> {
    const done = this.out.append(event)
    // Checked as the next record comes in rather than after each write: no extra promise per
    // append, and that record simply goes into the new log once the compaction is done.
    if (this.out.bytes > this.maxBytes && !this.compactor.current)
      this.compact().catch((err) => this.deps.log.log("error", "journal compaction failed; the log keeps growing", { error: String(err) }))
    return done
  }

  /** Resolves when everything appended so far is durable (and any compaction has finished). */
  async flush(): Promise<void> {
    for (;;) {
      await this.out.flush()
      const compaction = this.compactor.current
      if (!compaction) return
      // Its failure is reported to whoever asked for it (or logged); flushing is about our writes.
      await compaction.catch(() => {})
    }
  }

  /**
   * Records other processes (e.g. the CLI) appended since the last call, in order, each once.
   * Cheap when there are none: one `stat`.
   */
  readForeign(): Promise<JournalRecord[]> {
    return this.tail.read()
  }

  /** Rotates the log and folds everything on disk into a fresh snapshot. */
  compact(): Promise<void> {
    return this.compactor.compact()
  }

  async close(): Promise<void> {
    await this.flush()
    await this.out.close()
  }
}
