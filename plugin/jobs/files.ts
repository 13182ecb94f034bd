import { join } from "node:path"
import type { Deps } from "../deps.js"
import { ExitRecord } from "./job.js"

/** Where a job's files live: `<stateDir>/jobs/<id>/` with output.log, exit.json and the stop markers. */
export function jobDir(projectDir: string, stateDir: string, id: string): string {
  return join(projectDir, stateDir, "jobs", id)
}

export const OUTPUT_LOG = "output.log"
export const EXIT_RECORD = "exit.json"
/** Left by whoever cancels a job, holding the reason; the wrapper reports `cancelled` when it sees it. */
export const CANCEL_MARKER = "cancelled"
/** Left by the wrapper when its time limit ran out. */
export const TIMEOUT_MARKER = "timed_out"

/** The wrapper's exit record, or undefined while it has none (a torn or foreign file counts as none). */
export async function readExit(deps: Pick<Deps, "fs">, dir: string): Promise<ExitRecord | undefined> {
  const text = await deps.fs.readFile(join(dir, EXIT_RECORD), "utf8").catch(() => undefined)
  if (text === undefined) return undefined
  try {
    const r = ExitRecord.safeParse(JSON.parse(text))
    return r.success ? r.data : undefined
  } catch {
    return undefined
  }
}

export async function exists(deps: Pick<Deps, "fs">, path: string): Promise<boolean> {
  return deps.fs.stat(path).then(
    () => true,
    () => false,
  )
}

/** How much of the end of a log is read to find its last lines. */
const TAIL_BYTES = 64 * 1024

/** The last `lines` lines of a file (fewer if it is shorter; empty if it does not exist). */
export async function tailLines(deps: Pick<Deps, "fs">, path: string, lines: number): Promise<string[]> {
  let fh: Awaited<ReturnType<Deps["fs"]["open"]>> | undefined
  try {
    fh = await deps.fs.open(path, "r")
    const size = (await fh.stat()).size
    const start = Math.max(0, size - TAIL_BYTES)
    const buf = Buffer.alloc(size - start)
    await fh.read(buf, 0, buf.length, start)
    const all = buf.toString("utf8").split("\n")
    // A read that started mid-file starts mid-line: drop that fragment.
    if (start > 0) all.shift()
    if (all.length && all[all.length - 1] === "") all.pop()
    return all.slice(-lines)
  } catch {
    return []
  } finally {
    await fh?.close().catch(() => {})
  }
}
