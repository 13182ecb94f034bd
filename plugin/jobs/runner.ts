import { isAbsolute, join, resolve } from "node:path"
import type { Deps, TimerHandle } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import type { JobOptions } from "../options.js"
import type { Envelope, JournalEvent } from "../protocol.js"
import type { Outgoing } from "../router/outbox.js"
import { TaskError } from "../tasks/manager.js"
import { CANCEL_MARKER, OUTPUT_LOG, TIMEOUT_MARKER, exists, jobDir, readExit, tailLines } from "./files.js"
import { duration, jobReport } from "./format.js"
import { TERMINAL_JOB_STATUSES, type ExitRecord, type Job, type JobEnd } from "./job.js"
import { WRAPPER_SCRIPT } from "./wrapper.js"

/**
 * Background shell jobs: a command run without a model, detached in its own process group under
 * a small wrapper (wrapper.ts) that records its end on disk. The runner starts jobs, notices
 * their end (a watch on the job's folder, a slow poll as backstop), journals it and posts the
 * report through the outbox like a task result; after a restart it settles the jobs the journal
 * still shows running. It never waits for a job: the process is not its child.
 */

export interface JobPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  post(msg: Outgoing): Promise<Envelope>
  /** Why this agent may not run this command (its profile's bash rules), or undefined. */
  refuse(agent: string, command: string): string | undefined
  /** The background task whose session this is, if any. */
  taskOf(sessionId: string): string | undefined
  /** A job started or ended (for the session log). */
  logged?(job: Job, phase: "started" | "ended"): void
  projectDir: string
  stateDir: string
}

export interface JobStart {
  command: string
  title?: string
  /** Relative to the project, or absolute. */
  cwd?: string
  /** ms; 0 means no limit; absent means the `defaultTimeoutMs` option. */
  timeoutMs?: number
  sessionId: string
  /** Who asks: an agent name, or `user`. */
  agent: string
}

/** Written for the model that made the call. */
export class JobError extends TaskError {
  override name = "JobError"
}

/** The backstop poll for a job's end, in case a folder watch misses it (ms). */
export const POLL_MS = 2_000
/** Longest timeout_ms accepted: a week. */
export const MAX_TIMEOUT_MS = 7 * 24 * 3600_000
const MAX_COMMAND_CHARS = 20_000

export class JobRunner {
  private watches = new Map<string, () => void>()
  private poll: TimerHandle | undefined
  private checking = new Map<string, Promise<void>>()
  private again = new Set<string>()
  private ends = new Map<string, { promise: Promise<Job>; resolve: (j: Job) => void }>()
  /** Jobs cancelled by a caller that reports the cancel itself: no message is posted for them. */
  private quiet = new Set<string>()
  private kills = new Map<string, TimerHandle>()
  /** Jobs this runner sent SIGKILL (their wrapper died with them and wrote no record). */
  private killed = new Set<string>()
  private disposed = false

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "fs" | "log" | "proc">,
    private readonly opts: JobOptions,
    private readonly ports: JobPorts,
  ) {}

  get(id: string): Job | undefined {
    return this.ports.state.jobs.get(id)
  }

  /** The job's folder (absolute). */
  dir(id: string): string {
    return jobDir(this.ports.projectDir, this.ports.stateDir, id)
  }

  /** The full log, as a path relative to the project (shorter for a model to read back). */
  logPath(id: string): string {
    return join(this.ports.stateDir, "jobs", id, OUTPUT_LOG)
  }

  /** Jobs started in these sessions, newest first. */
  list(sessionIds: ReadonlySet<string>): Job[] {
    return [...this.ports.state.jobs.values()].filter((j) => sessionIds.has(j.sessionId)).sort((a, b) => b.startedAt - a.startedAt)
  }

  /** Jobs of this session still running. */
  running(sessionId: string): number {
    let n = 0
    for (const j of this.ports.state.jobs.values()) if (j.sessionId === sessionId && j.status === "running") n++
    return n
  }

  /** Resolves when the job has ended. */
  ended(id: string): Promise<Job> {
    const j = this.get(id)
    if (!j || TERMINAL_JOB_STATUSES.has(j.status)) return Promise.resolve(j!)
    let e = this.ends.get(id)
    if (!e) {
      let resolve!: (j: Job) => void
      const promise = new Promise<Job>((r) => (resolve = r))
      this.ends.set(id, (e = { promise, resolve }))
    }
    return e.promise
  }

  /** The job and the last lines of its output. */
  async report(id: string, lines = this.opts.tailLines): Promise<string> {
    const j = this.get(id)
    if (!j) throw new JobError(`No job "${id}". Call tasks without an id to list jobs and tasks.`)
    const tail = await tailLines(this.deps, join(this.dir(id), OUTPUT_LOG), lines)
    return jobReport(j, tail, this.logPath(id), this.deps.clock.now())
  }

  // ----- start --------------------------------------------------------------------------------

  /** Validates, starts the command detached, journals it (durably); returns before it ends. */
  async start(input: JobStart): Promise<Job> {
    const command = input.command.trim()
    if (!command) throw new JobError("command is empty: give the shell command to run.")
    if (command.length > MAX_COMMAND_CHARS) throw new JobError(`command is ${command.length} characters; at most ${MAX_COMMAND_CHARS}. Put a long script in a file and run that.`)
    const timeoutMs = input.timeoutMs ?? this.opts.defaultTimeoutMs
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > MAX_TIMEOUT_MS)
      throw new JobError(`timeout_ms must be a whole number of milliseconds from 0 (no limit) to ${MAX_TIMEOUT_MS} (7 days); got ${input.timeoutMs}.`)
    const refusal = this.ports.refuse(input.agent, command)
    if (refusal) throw new JobError(refusal)
    const running = [...this.ports.state.jobs.values()].filter((j) => j.status === "running").length
    if (running >= this.opts.maxRunning)
      throw new JobError(`${running} jobs already run (the jobs.maxRunning option allows ${this.opts.maxRunning}). Wait for one to end (tasks with its id and wait_ms) or cancel one, then start this again.`)
    const cwd = input.cwd ? (isAbsolute(input.cwd) ? input.cwd : resolve(this.ports.projectDir, input.cwd)) : this.ports.projectDir
    if (input.cwd && !(await this.deps.fs.stat(cwd).catch(() => undefined))?.isDirectory())
      throw new JobError(`cwd "${input.cwd}" is not a folder (resolved to ${cwd}). Give a folder relative to the project, or leave cwd out.`)

    const id = this.deps.ids.id("job")
    const dir = this.dir(id)
    // The wrapper makes its folder too (mkdir -p): the two run side by side, not one after the other.
    const made = this.deps.fs.mkdir(dir, { recursive: true })
    const [folder, spawned] = await Promise.allSettled([made, this.deps.proc.spawnDetached("/bin/sh", ["-c", WRAPPER_SCRIPT, "nso-job", dir, String(timeoutMs), String(this.opts.killGraceMs), command], { cwd })])
    if (spawned.status === "rejected") throw new JobError(`the job could not be started: ${(spawned.reason as Error).message}`)
    const pid = spawned.value
    if (folder.status === "rejected") {
      // Nowhere to write its output or its end: a job nobody could follow. Stop it now.
      this.deps.proc.signalGroup(pid, "SIGKILL")
      throw new JobError(`the job's folder ${dir} could not be made (${(folder.reason as Error).message}); the job was not started.`)
    }
    const taskId = this.ports.taskOf(input.sessionId)
    const job: Job = {
      id,
      command,
      title: (input.title?.trim() || command.split("\n")[0]!).slice(0, 80),
      cwd,
      timeoutMs,
      sessionId: input.sessionId,
      ...(taskId ? { taskId } : {}),
      startedBy: input.agent,
      status: "running",
      pid,
      pgid: pid,
      startedAt: this.deps.clock.now(),
    }
    await this.ports.write({ type: "job.started", job })
    this.ports.logged?.(job, "started")
    this.watch(id)
    return job
  }

  // ----- end ----------------------------------------------------------------------------------

  private watch(id: string): void {
    if (this.disposed || this.watches.has(id)) return
    this.watches.set(id, this.deps.proc.watch(this.dir(id), () => this.check(id)))
    this.poll ??= this.deps.timers.setInterval(() => this.checkAll(), POLL_MS, { keepAlive: false })
    // It may have ended before the watch was in place.
    this.check(id)
  }

  private unwatch(id: string): void {
    this.watches.get(id)?.()
    this.watches.delete(id)
    if (!this.watches.size && this.poll) {
      this.deps.timers.clearInterval(this.poll)
      this.poll = undefined
    }
  }

  /** Looks at every running job now (the poll; also for tests and the CLI's cancel pick-up). */
  checkAll(): void {
    for (const j of this.ports.state.jobs.values()) if (j.status === "running") this.check(j.id)
  }

  /** Has the job ended? One look at a time per job; a change seen during a look is looked at right after it. */
  check(id: string): void {
    if (this.checking.has(id)) return void this.again.add(id)
    this.checking.set(
      id,
      this.settle(id)
        .catch((err) => this.deps.log.log("error", "checking a job failed", { id, error: String(err) }))
        .finally(() => {
          this.checking.delete(id)
          if (this.again.delete(id)) this.check(id)
        }),
    )
  }

  private async settle(id: string): Promise<void> {
    const j = this.get(id)
    if (!j || j.status !== "running") return this.unwatch(id)
    const dir = this.dir(id)
    let rec = await readExit(this.deps, dir)
    if (!rec) {
      if (this.deps.proc.signalGroup(j.pgid, 0)) return
      // The group is gone: the record, if any, was renamed into place before the wrapper exited.
      rec = await readExit(this.deps, dir)
    }
    if (rec) return this.end(j, await this.fromRecord(j, rec))
    // Nothing left and no record: someone's SIGKILL took the wrapper too, or the machine went down.
    const cancelled = await this.deps.fs.readFile(join(dir, CANCEL_MARKER), "utf8").catch(() => undefined)
    const now = this.deps.clock.now()
    if (cancelled !== undefined) {
      const killed = this.killed.has(id)
      return this.end(j, { status: "cancelled", ...(killed ? { signal: "KILL" } : {}), reason: `${cancelled.trim() || "cancelled"}; ${killed ? "it ignored SIGTERM and was killed" : "it stopped before its wrapper recorded an end"}`, endedAt: now })
    }
    if (await exists(this.deps, join(dir, TIMEOUT_MARKER)))
      return this.end(j, { status: "timed_out", signal: "KILL", reason: `ran longer than its ${duration(j.timeoutMs)} limit, ignored SIGTERM and was killed`, endedAt: now })
    return this.end(j, { status: "failed", reason: "lost: the process is gone and left no exit record", endedAt: now })
  }

  private async fromRecord(j: Job, r: ExitRecord): Promise<JobEnd> {
    const base = { ...(r.exitCode !== null ? { exitCode: r.exitCode } : {}), ...(r.signal ? { signal: r.signal } : {}), endedAt: r.endedAt }
    if (r.cancelled) {
      const why = await this.deps.fs.readFile(join(this.dir(j.id), CANCEL_MARKER), "utf8").catch(() => "")
      return { ...base, status: "cancelled", reason: why.trim() || "cancelled" }
    }
    if (r.timedOut) return { ...base, status: "timed_out", reason: `ran longer than its ${duration(j.timeoutMs)} limit; its process group was stopped` }
    return { ...base, status: r.exitCode === 0 ? "succeeded" : "failed" }
  }

  /** Journals the end and posts the report in one group commit; only the first end counts. */
  private async end(j: Job, end: JobEnd): Promise<void> {
    if (this.get(j.id)?.status !== "running") return
    // Read first: the end and its report then reach the journal in one group commit.
    const quiet = this.quiet.has(j.id)
    const tail = quiet ? [] : await tailLines(this.deps, join(this.dir(j.id), OUTPUT_LOG), this.opts.tailLines)
    if (this.get(j.id)?.status !== "running") return
    this.quiet.delete(j.id)
    this.killed.delete(j.id)
    this.unwatch(j.id)
    const kill = this.kills.get(j.id)
    if (kill) this.deps.timers.clearTimeout(kill)
    this.kills.delete(j.id)
    const written = this.ports.write({ type: "job.ended", id: j.id, end })
    const done = this.get(j.id)!
    this.ports.logged?.(done, "ended")
    const e = this.ends.get(j.id)
    this.ends.delete(j.id)
    e?.resolve(done)
    if (quiet) return void (await written)
    await Promise.all([
      written,
      this.ports.post({
        source: "system",
        from: "job",
        to: "oracle",
        kind: done.status === "succeeded" ? "completion" : done.status === "cancelled" ? "status" : "failure",
        toSessionId: done.sessionId,
        text: jobReport(done, tail, this.logPath(done.id), this.deps.clock.now()),
      }),
    ])
  }

  // ----- cancel -------------------------------------------------------------------------------

  /**
   * SIGTERM to the job's whole process group, SIGKILL after the grace if anything is left.
   * `tell: false`: the caller reports the cancel itself (a tool result), no message follows.
   * Resolves with what was done once the job ended, or after the grace and a moment more.
   */
  async cancel(id: string, reason: string, opts: { tell?: boolean } = {}): Promise<string> {
    const j = this.get(id)
    if (!j) throw new JobError(`No job "${id}". Call tasks without an id to list jobs and tasks.`)
    if (j.status !== "running") return `Job ${id} already ended: ${j.status}; nothing to cancel.`
    if (opts.tell === false) this.quiet.add(id)
    await this.deps.fs.writeFile(join(this.dir(id), CANCEL_MARKER), reason).catch(() => {})
    const alive = this.deps.proc.signalGroup(j.pgid, "SIGTERM")
    this.watch(id)
    if (alive && !this.kills.has(id))
      this.kills.set(
        id,
        this.deps.timers.setTimeout(() => {
          this.kills.delete(id)
          if (this.get(id)?.status === "running" && this.deps.proc.signalGroup(j.pgid, "SIGKILL")) {
            this.killed.add(id)
            this.deps.log.log("warn", "a job ignored SIGTERM and was killed", { id })
          }
          this.check(id)
        }, this.opts.killGraceMs),
      )
    else this.check(id)
    const ended = await this.within(this.ended(id), this.opts.killGraceMs + 1_000)
    const how = ended ? `it ended (${ended.signal ? `signal ${ended.signal}` : ended.exitCode !== undefined ? `exit ${ended.exitCode}` : ended.status}); no process of its group is left` : `SIGKILL follows if any process of group ${j.pgid} is left`
    return `Cancelled job ${id} ("${j.title}"): SIGTERM sent to its process group ${j.pgid}; ${how}.`
  }

  private async within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
    let timer: TimerHandle | undefined
    try {
      return await Promise.race([p, new Promise<undefined>((r) => (timer = this.deps.timers.setTimeout(() => r(undefined), ms)))])
    } finally {
      if (timer) this.deps.timers.clearTimeout(timer)
    }
  }

  /** Cancels every job a session started (its task ended: nobody would hear their end). */
  async cancelOwnedBy(sessionId: string, reason: string): Promise<void> {
    for (const j of [...this.ports.state.jobs.values()]) if (j.sessionId === sessionId && j.status === "running") await this.cancel(j.id, reason)
  }

  // ----- restart ------------------------------------------------------------------------------

  /**
   * After a restart: each job the journal shows running is ended from its exit record (and its
   * report posted, once), watched if its process group lives, or ended as lost.
   */
  async recover(): Promise<void> {
    for (const j of [...this.ports.state.jobs.values()]) {
      if (j.status !== "running") continue
      this.watch(j.id)
    }
    await this.idle()
  }

  /** Resolves when no end check is in flight (tests, recovery). */
  async idle(): Promise<void> {
    while (this.checking.size) await Promise.all([...this.checking.values()])
  }

  dispose(): void {
    this.disposed = true
    for (const id of [...this.watches.keys()]) this.unwatch(id)
    for (const t of this.kills.values()) this.deps.timers.clearTimeout(t)
    this.kills.clear()
  }
}
