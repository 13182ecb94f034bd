import { join } from "node:path"
import { JOURNAL_VERSION, type JournalRecord } from "../protocol.js"
import { readLines } from "./lines.js"
import { decodeRecord } from "./record.js"
import { COMPACTING, isMissing, LOG, SNAPSHOT, type JournalDeps, type Reducer, type ReplayReport, type Snapshot } from "./types.js"

/**
 * Rebuilding state from disk: the snapshot, then left-over rotated logs of a compaction that did
 * not finish, then the live log. Damage is expected, not fatal: a line that is not a valid record
 * is skipped and counted, a partial last line (a crash mid-write) is counted as torn, and a
 * record whose writer and sequence were already folded in (a batch written twice around a
 * rotation, or one the snapshot holds) is skipped and counted as a duplicate.
 */

export interface FoldContext<S> {
  state: S
  /** Highest sequence folded in, per writer: anything at or below it is a duplicate. */
  covered: Record<string, number>
  /** Rotated logs the snapshot already holds. */
  absorbed: string[]
  records: number
  corrupt: number
  torn: number
  duplicates: number
  fromSnapshot: boolean
}

export async function replay<S>(deps: JournalDeps, dir: string, reducer: Reducer<S>): Promise<{ state: S; report: ReplayReport }> {
  const started = deps.clock.monotonic()
  const ctx = await loadSnapshot(deps, dir, reducer)
  // Files a snapshot already absorbed are left-overs of a crash after the snapshot was written.
  for (const f of ctx.absorbed) await deps.fs.unlink(join(dir, f)).catch(() => {})
  const files = await compactingFiles(deps, dir, ctx.absorbed)
  for (const f of files) await foldFile(deps, join(dir, f), reducer, ctx)
  await foldFile(deps, join(dir, LOG), reducer, ctx)
  return {
    state: ctx.state,
    report: {
      records: ctx.records,
      snapshot: ctx.fromSnapshot,
      corrupt: ctx.corrupt,
      torn: ctx.torn,
      duplicates: ctx.duplicates,
      recoveredCompactions: files.length,
      durationMs: deps.clock.monotonic() - started,
    },
  }
}

export function emptyReport(): ReplayReport {
  return { records: 0, snapshot: false, corrupt: 0, torn: 0, duplicates: 0, recoveredCompactions: 0, durationMs: 0 }
}

/** Rotated logs not yet absorbed by the snapshot, oldest first (their names start with the time). */
export async function compactingFiles(deps: JournalDeps, dir: string, absorbed: readonly string[]): Promise<string[]> {
  const names = await deps.fs.readdir(dir)
  const skip = new Set(absorbed)
  return names.filter((n) => COMPACTING.test(n) && !skip.has(n)).sort()
}

export async function loadSnapshot<S>(deps: JournalDeps, dir: string, reducer: Reducer<S>): Promise<FoldContext<S>> {
  const ctx: FoldContext<S> = {
    state: reducer.init(),
    covered: {},
    absorbed: [],
    records: 0,
    corrupt: 0,
    torn: 0,
    duplicates: 0,
    fromSnapshot: false,
  }
  const path = join(dir, SNAPSHOT)
  let text: string
  try {
    text = await deps.fs.readFile(path, "utf8")
  } catch (err) {
    if (isMissing(err)) return ctx
    throw err
  }
  // Unlike a log line, a snapshot is written whole and renamed into place: damage here is not a
  // crash artefact but something to stop for, since skipping it would silently lose state.
  const snap = JSON.parse(text) as Snapshot
  if (snap.v !== JOURNAL_VERSION) throw new Error(`${path} has version ${snap.v}; this NSO reads version ${JOURNAL_VERSION}`)
  ctx.state = reducer.deserialize(snap.state)
  ctx.covered = { ...snap.covered }
  ctx.absorbed = snap.absorbed ?? []
  ctx.fromSnapshot = true
  return ctx
}

/** Folds every record of one log file into `ctx`; `touched` collects the writers seen. */
export async function foldFile<S>(
  deps: JournalDeps,
  path: string,
  reducer: Reducer<S>,
  ctx: FoldContext<S>,
  touched?: Set<string>,
): Promise<void> {
  let fd
  try {
    fd = await deps.fs.open(path, "r")
  } catch (err) {
    if (isMissing(err)) return
    throw err
  }
  try {
    const { rest } = await readLines(fd, 0, Infinity, (buf, start, end) => {
      if (start === end) return
      const rec = decodeRecord(buf, start, end)
      if (rec) fold(rec, reducer, ctx, touched)
      else ctx.corrupt++
    })
    if (rest.length) {
      // A final line without its newline is a write cut off by a crash. If it happens to be a
      // whole record, it was complete except for the newline, and keeping it loses nothing.
      const rec = decodeRecord(rest, 0, rest.length)
      if (rec) fold(rec, reducer, ctx, touched)
      else ctx.torn++
    }
  } finally {
    await fd.close()
  }
}

function fold<S>(rec: JournalRecord, reducer: Reducer<S>, ctx: FoldContext<S>, touched: Set<string> | undefined): void {
  const seen = ctx.covered[rec.w]
  if (seen !== undefined && rec.s <= seen) {
    ctx.duplicates++
    return
  }
  ctx.covered[rec.w] = rec.s
  touched?.add(rec.w)
  ctx.state = reducer.apply(ctx.state, rec)
  ctx.records++
}
