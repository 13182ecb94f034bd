import type { Deps } from "../deps.js"
import type { JournalRecord } from "../protocol.js"

/** What the journal needs from the outside world; every file access goes through `fs`. */
export type JournalDeps = Pick<Deps, "fs" | "clock" | "ids" | "log">

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

export interface Snapshot {
  v: number
  /** Highest sequence number folded in, per writer. */
  covered: Record<string, number>
  /** Rotated log files whose records the snapshot contains. */
  absorbed: string[]
  state: unknown
  time: number
}

/** The live log every writer appends to. */
export const LOG = "journal.jsonl"
export const SNAPSHOT = "snapshot.json"
/** A log renamed by a compaction that has not finished yet (or crashed). */
export const COMPACTING = /^journal\.\d+\.[\w-]+(\.\d+)?\.compacting$/

export const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException)?.code === "ENOENT"
