import { basename, dirname, join } from "node:path"
import type { Deps } from "../deps.js"
import { compileCheck } from "../journal/fastcheck.js"
import type { Batched, TelemetryInput } from "./analysis.js"
import { Invocation, TELEMETRY_FILES, WorkflowEvent } from "./schema.js"

/**
 * Streams the telemetry files for the analysis: line by line in chunks of a few MiB, never a whole
 * file in memory. A line that is not JSON or not a valid record is skipped and counted; so is a
 * torn last line (a write cut short, or one still being written). A missing file is an empty log.
 *
 * A log is its current file and the files rotation renamed (`<name>.1` the latest of them,
 * `<name>.2` older, …), read oldest first. A rotation while a reader is in its files may make
 * it see some lines twice or miss some; the next read is whole again.
 */

/** Bytes read per call. Small enough that a chunk's records die young (a few MiB of them promoted to the old generation costs more in GC than the reads save). */
export const CHUNK_BYTES = 256 * 1024

/** What reading one log found. */
export interface ReadReport {
  /** The files read, oldest first. */
  files: string[]
  lines: number
  records: number
  /** Lines that were not JSON, or not a valid record. */
  invalid: number
  /** Bytes after a file's last newline: a line cut short, or one still being written. */
  torn: number
}

export const emptyReport = (): ReadReport => ({ files: [], lines: 0, records: 0, invalid: 0, torn: 0 })

type Fs = Pick<Deps["fs"], "open" | "readdir">

/** A record as the schema accepts it, or undefined. Valid lines written by the recorder take the fast path. */
export type Accept<T> = (value: unknown) => T | undefined

function acceptor<T>(schema: { safeParse(v: unknown): { success: true; data: T } | { success: false } }, fast: (v: unknown) => boolean): Accept<T> {
  return (v) => {
    if (fast(v)) return v as T
    const r = schema.safeParse(v)
    return r.success ? r.data : undefined
  }
}

export const acceptInvocation: Accept<Invocation> = acceptor(Invocation, compileCheck(Invocation))
export const acceptWorkflowEvent: Accept<WorkflowEvent> = acceptor(WorkflowEvent, compileCheck(WorkflowEvent))

/** The files of a log, oldest first: `<path>.N` … `<path>.1`, then `<path>` (those that exist). */
export async function logFiles(fs: Fs, path: string): Promise<string[]> {
  const dir = dirname(path)
  const name = basename(path)
  let entries: string[]
  try {
    entries = await fs.readdir(dir)
  } catch {
    return []
  }
  const rotated: { n: number; file: string }[] = []
  let current = false
  for (const e of entries) {
    if (e === name) current = true
    else if (e.startsWith(name + ".")) {
      const suffix = e.slice(name.length + 1)
      if (/^[1-9]\d*$/.test(suffix)) rotated.push({ n: Number(suffix), file: join(dir, e) })
    }
  }
  rotated.sort((a, b) => b.n - a.n)
  return [...rotated.map((r) => r.file), ...(current ? [path] : [])]
}

/**
 * The records of one log, oldest first, one by one or a chunk's worth at a time (`batches`).
 * Each iteration reads the files again; `report` (if given) is reset and filled as it goes.
 * Reads each file up to the size it had when opened.
 */
export function readLog<T>(deps: { fs: Fs }, path: string, accept: Accept<T>, report?: ReadReport, chunkBytes = CHUNK_BYTES): AsyncIterable<T> & Batched<T> {
  const fresh = () => {
    const r = report ?? emptyReport()
    Object.assign(r, emptyReport())
    return r
  }
  return {
    [Symbol.asyncIterator]: () => records(chunksOf(deps.fs, path, accept, fresh(), chunkBytes)),
    batches: () => ({ [Symbol.asyncIterator]: () => chunksOf(deps.fs, path, accept, fresh(), chunkBytes) }),
  }
}

/** Records one by one from the chunks. */
function records<T>(chunks: AsyncGenerator<T[]>): AsyncIterator<T> {
  let batch: T[] = []
  let at = 0
  return {
    async next(): Promise<IteratorResult<T>> {
      while (at >= batch.length) {
        const c = await chunks.next()
        if (c.done) return { done: true, value: undefined }
        batch = c.value
        at = 0
      }
      return { done: false, value: batch[at++]! }
    },
    async return(): Promise<IteratorResult<T>> {
      await chunks.return(undefined)
      return { done: true, value: undefined }
    },
  }
}

async function* chunksOf<T>(fs: Fs, path: string, accept: Accept<T>, report: ReadReport, chunkBytes: number): AsyncGenerator<T[]> {
  const files = await logFiles(fs, path)
  for (const file of files) {
    let fh
    try {
      fh = await fs.open(file, "r")
    } catch {
      continue // rotated away between the listing and now
    }
    try {
      report.files.push(file)
      const size = (await fh.stat()).size
      let buf = Buffer.allocUnsafe(Math.max(1, Math.min(chunkBytes, size)))
      let held = 0 // bytes at the start of `buf` after the last newline seen
      let pos = 0
      while (pos < size) {
        if (held === buf.length) {
          // One line longer than the buffer: grow it rather than split the line.
          const bigger = Buffer.allocUnsafe(buf.length * 2)
          buf.copy(bigger, 0, 0, held)
          buf = bigger
        }
        const { bytesRead } = await fh.read(buf, held, Math.min(buf.length - held, size - pos), pos)
        if (bytesRead === 0) break
        pos += bytesRead
        const end = held + bytesRead
        const out: T[] = []
        let start = 0
        for (let nl = buf.indexOf(0x0a, held); nl >= 0 && nl < end; nl = buf.indexOf(0x0a, start)) {
          line(buf, start, nl, accept, report, out)
          start = nl + 1
        }
        held = end - start
        if (start > 0 && held > 0) buf.copy(buf, 0, start, end)
        if (out.length) yield out
      }
      if (held > 0 && buf.subarray(0, held).toString("utf8").trim()) report.torn++
    } finally {
      await fh.close()
    }
  }
}

function line<T>(buf: Buffer, start: number, end: number, accept: Accept<T>, report: ReadReport, out: T[]): void {
  if (end > start && buf[end - 1] === 0x0d) end-- // CRLF
  if (end === start) return
  report.lines++
  let value: unknown
  try {
    value = JSON.parse(buf.toString("utf8", start, end))
  } catch {
    report.invalid++
    return
  }
  const rec = accept(value)
  if (rec === undefined) report.invalid++
  else {
    report.records++
    out.push(rec)
  }
}

/** Where the telemetry files are: `<project>/<stateDir>/telemetry`. */
export function telemetryDir(projectDir: string, stateDir: string): string {
  return join(projectDir, stateDir, "telemetry")
}

export interface TelemetryFiles {
  input: TelemetryInput
  /** Filled as the logs are read (reset at each pass). */
  report: { workflows: ReadReport; invocations: ReadReport }
}

/** Both logs of a telemetry folder, ready for `analyze`. */
export function openTelemetry(deps: { fs: Fs }, dir: string, chunkBytes = CHUNK_BYTES): TelemetryFiles {
  const report = { workflows: emptyReport(), invocations: emptyReport() }
  return {
    input: {
      workflows: readLog(deps, join(dir, TELEMETRY_FILES.workflows), acceptWorkflowEvent, report.workflows, chunkBytes),
      invocations: readLog(deps, join(dir, TELEMETRY_FILES.invocations), acceptInvocation, report.invocations, chunkBytes),
    },
    report,
  }
}
