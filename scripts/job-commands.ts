/**
 * The job side of the `nso` CLI (`nso jobs`, `nso job`, `nso cancel <job id>`): listing,
 * following a job's output, and cancelling a job when no server is there to do it.
 */
import { open } from "node:fs/promises"
import { join } from "node:path"
import type { Deps } from "../plugin/deps.js"
import { EXIT_RECORD, OUTPUT_LOG } from "../plugin/jobs/files.js"
import { duration, outcome } from "../plugin/jobs/format.js"
import type { Job } from "../plugin/jobs/job.js"
import { JobRunner } from "../plugin/jobs/runner.js"
import { Journal } from "../plugin/journal/journal.js"
import { nsoReducer, type LiveState } from "../plugin/journal/state.js"
import type { JobOptions } from "../plugin/options.js"
import { Outbox } from "../plugin/router/outbox.js"

/** One line per job for people: id, status, age or run time, exit, title, command. */
export function jobsTable(jobs: readonly Job[], now: number): string[] {
  return jobs.map((j) => {
    const ran = duration((j.endedAt ?? now) - j.startedAt)
    const exit = j.exitCode !== undefined ? `exit ${j.exitCode}` : j.signal ? `signal ${j.signal}` : "-"
    return `${j.id} · ${j.status.padEnd(9)} · ${j.status === "running" ? `running ${ran}` : `took ${ran}, ended ${duration(now - (j.endedAt ?? now))} ago`} · ${exit} · "${j.title}"${j.title !== j.command ? ` · ${j.command.slice(0, 80)}` : ""}`
  })
}

/** The status line `nso job` prints before and after the output. */
export function jobHeadline(j: Job, now: number): string {
  return j.status === "running"
    ? `${j.id} "${j.title}" running for ${duration(now - j.startedAt)} (pid ${j.pid}) in ${j.cwd}\n$ ${j.command}`
    : `${j.id} "${j.title}" ${outcome(j)} after ${duration((j.endedAt ?? now) - j.startedAt)}\n$ ${j.command}`
}

/**
 * Prints the job's output as it grows, from byte `from`, until `done()` says it ended (then what
 * is left is printed) or `signal` aborts (Ctrl-C: the job itself is not touched). Resolves with
 * how it stopped.
 */
export async function follow(path: string, from: number, write: (s: string) => void, done: () => Promise<boolean>, signal: AbortSignal, pollMs = 200): Promise<"ended" | "interrupted"> {
  let pos = from
  let partial = ""
  const drain = async (): Promise<void> => {
    const fh = await open(path, "r").catch(() => undefined)
    if (!fh) return
    try {
      const size = (await fh.stat()).size
      if (size <= pos) return
      const buf = Buffer.alloc(size - pos)
      await fh.read(buf, 0, buf.length, pos)
      pos = size
      const text = partial + buf.toString("utf8")
      const cut = text.lastIndexOf("\n")
      partial = cut < 0 ? text : text.slice(cut + 1)
      if (cut >= 0) write(text.slice(0, cut))
    } finally {
      await fh.close()
    }
  }
  for (;;) {
    if (signal.aborted) return "interrupted"
    const ended = await done()
    await drain()
    if (ended) {
      if (partial) write(partial)
      return "ended"
    }
    await new Promise<void>((r) => {
      const t = setTimeout(r, pollMs)
      signal.addEventListener("abort", () => (clearTimeout(t), r()), { once: true })
    })
  }
}

/** Whether the wrapper recorded the job's end (so a follower can stop without a server). */
export async function exitRecorded(deps: Pick<Deps, "fs">, jobDir: string): Promise<boolean> {
  return deps.fs.stat(join(jobDir, EXIT_RECORD)).then(
    () => true,
    () => false,
  )
}

export const outputPath = (jobDir: string) => join(jobDir, OUTPUT_LOG)

/**
 * Cancels a job with no server to do it: the same runner the server uses, writing to the journal
 * as one more writer — SIGTERM to the group, SIGKILL after the grace, the end journaled and its
 * report buffered for the session that started it (delivered when OpenCode runs here again).
 */
export async function cancelWithoutServer(deps: Deps, at: { projectDir: string; stateDir: string }, opts: JobOptions, state: LiveState, id: string, by: string): Promise<{ said: string; job: Job }> {
  const { journal } = await Journal.open(deps, nsoReducer, { dir: join(at.projectDir, at.stateDir), maxBytes: Number.MAX_SAFE_INTEGER })
  const write = (e: Parameters<typeof journal.append>[0]) => {
    nsoReducer.apply(state, { v: 1, w: journal.writer, s: 0, t: deps.clock.now(), e })
    return journal.append(e)
  }
  const outbox = new Outbox(deps, { tasks: state.tasks, push: (env) => write({ type: "message.buffered", envelope: env }) })
  const runner = new JobRunner(deps, opts, {
    state,
    write,
    post: (m) => outbox.post(m),
    refuse: () => undefined,
    taskOf: () => undefined,
    ...at,
  })
  try {
    const said = await runner.cancel(id, `cancelled by ${by}`)
    await runner.idle()
    return { said, job: state.jobs.get(id)! }
  } finally {
    runner.dispose()
    await journal.close()
  }
}
