import { join } from "node:path"
import type { AssistantOutcome, Deps } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import type { TaskOptions } from "../options.js"
import { IdPrefix, TERMINAL_TASK_STATUSES, type Envelope, type JournalEvent, type Task, type TaskStatus, type TaskUsage, type TaskWorkflow } from "../protocol.js"
import type { AgentInfo } from "../agents/catalogue.js"
import type { Outgoing } from "../router/outbox.js"
import { ReplyTracker, verdict } from "./completion.js"
import { recoveryFor } from "./recovery.js"
import { ScopeLocks } from "./scope.js"
import { Slots, type Lease } from "./slots.js"
import { descendants, tree } from "./tree.js"
import { addUsage, NO_USAGE, totalTokens, usageLine } from "./usage.js"
import { Watchdog } from "./watchdog.js"

/**
 * Background delegation: a task's whole life, from `delegate` to its result in the buffer.
 * The parts live beside this file — concurrency slots, write-scope locks, reply tracking,
 * the watchdog, restart recovery — and this class runs the lifecycle through them:
 *
 *   queued → (scope free, slot granted) → running ⇄ waiting_for_answer → completed | failed | cancelled
 *
 * A task holds a model slot only while its agent works: waiting for a dependency, a write
 * scope or the user holds none.
 */

export interface TaskPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  /** Hands a message to the outbox, which decides its recipient and priority. */
  post(msg: Outgoing): Promise<Envelope>
  /** Known agents NSO may delegate to. */
  agents(): Map<string, AgentInfo>
  /**
   * A task's work was cut off without anyone cancelling it: by a restart, or by its reply being
   * stopped outside NSO (quitting OpenCode aborts replies in flight). The task is on hold
   * (`stalled`, not finished); the caller decides resume or cancel (the close policy).
   */
  onInterrupted(task: Task, how: "restart" | "stopped"): Promise<void>
  /** A task's child session exists (its ancestry is known: no need to ask OpenCode for it). */
  sessionStarted(sessionId: string, parentSessionId: string, title: string): void
  /** The isolation header text for a task (written into its context file). */
  isolationHeader(task: Task): string
  /**
   * What this session still waits for besides its own tasks: messages held for it in the buffer,
   * team runs it started. A task is not done while it waits for any.
   */
  awaiting(sessionId: string): number
  projectDir: string
  stateDir: string
}

export interface DelegateInput {
  parentSessionId: string
  agent: string
  prompt: string
  title?: string
  priority?: "low" | "medium" | "high"
  scope?: string[]
  dependsOn?: string[]
  /** Start once the dependencies ended whatever way (team runs: the synthesis gets what arrived). */
  acceptPartial?: boolean
  /** Wall-clock limit for this task, in ms. */
  timeoutMs?: number
  /** Most model turns this task may take; only lowers what the options and profile allow. */
  maxTurns?: number
  /** Most tokens this task's own turns may spend; only lowers what the options and profile allow. */
  maxTokens?: number
  /** The task's place in a team run. */
  workflow?: TaskWorkflow
}

/** An error whose message is written for the model that made the call. */
export class TaskError extends Error {
  override name = "TaskError"
}

/** Most characters of a dependency's result handed to the next task. */
const HANDOFF_CHARS = 4_000
const SLOT_PRIORITY = { low: 0, medium: 1, high: 2 } as const

export class TaskManager {
  private readonly slots: Slots
  /** Per team run with a `max_parallel`: its own small pool of slots, held from launch to end. */
  private readonly groups = new Map<string, Slots>()
  private groupLeases = new Map<string, Lease>()
  /**
   * Assistant messages seen per task in this process, with their usage; `base` is what the journal
   * held when this process first saw the task turn (the turns before a restart).
   */
  private spend = new Map<string, { base: TaskUsage; messages: Map<string, TaskUsage> }>()
  /** Tasks between a transient failure and their retry's first new reply. `sentAt`: when the retry prompt went out. */
  private retrying = new Map<string, { timer?: ReturnType<Deps["timers"]["setTimeout"]>; sentAt?: number }>()
  /** Tasks whose end a caller waits for in its tool call (`delegate` with wait): their result is returned there, not posted. */
  private inline = new Set<string>()
  private readonly scopes = new ScopeLocks()
  private readonly replies = new ReplyTracker()
  private readonly watchdog: Watchdog
  private leases = new Map<string, Lease>()
  private ends = new Map<string, { promise: Promise<Task>; resolve: (t: Task) => void }>()
  private bySession = new Map<string, string>()
  /** Tasks a restart cut off, waiting for the user's decision: their session's old (aborted) reply is not their outcome. */
  private interrupted = new Set<string>()
  private confirming = new Set<string>()
  private finishing = new Set<string>()
  private sweep: ReturnType<Deps["timers"]["setInterval"]> | undefined
  private endListeners = new Set<(t: Task) => void>()
  private launches = 0

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "host" | "log" | "fs">,
    private readonly opts: TaskOptions,
    private readonly ports: TaskPorts,
  ) {
    this.slots = new Slots(opts.concurrency)
    this.watchdog = new Watchdog(deps, opts, {
      onQuiet: (id, quietMs) => void this.onQuiet(id, quietMs).catch((err) => this.deps.log.log("error", "stall check failed", { id, error: String(err) })),
      onOverTime: (id, limitMs) =>
        void this.stop(id, `it ran longer than its ${limitMs / 1000} s limit`).catch((err) =>
          this.deps.log.log("error", "stopping a task over its time limit failed", { id, error: String(err) }),
        ),
    })
    for (const t of ports.state.tasks.values()) if (t.sessionId) this.bySession.set(t.sessionId, t.id)
  }

  get(id: string): Task | undefined {
    return this.ports.state.tasks.get(id)
  }

  bySessionId(sessionId: string): Task | undefined {
    const id = this.bySession.get(sessionId)
    return id ? this.get(id) : undefined
  }

  /** Tasks delegated from this session or from any task under it. */
  tree(sessionId: string): Task[] {
    return tree(this.ports.state.tasks, sessionId)
  }

  running(sessionId: string): number {
    return this.tree(sessionId).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status)).length
  }

  onEnded(fn: (t: Task) => void): () => void {
    this.endListeners.add(fn)
    return () => this.endListeners.delete(fn)
  }

  /** Resolves when the task reaches a terminal status. */
  ended(id: string): Promise<Task> {
    const t = this.get(id)
    if (t && TERMINAL_TASK_STATUSES.has(t.status)) return Promise.resolve(t)
    let e = this.ends.get(id)
    if (!e) {
      let resolve!: (t: Task) => void
      const promise = new Promise<Task>((r) => (resolve = r))
      e = { promise, resolve }
      this.ends.set(id, e)
    }
    return e.promise
  }

  // ----- delegate -----------------------------------------------------------------------------

  /** Validates, journals (durably) and schedules a task; returns before any model call. */
  async delegate(input: DelegateInput): Promise<Task> {
    const agents = this.ports.agents()
    if (!agents.has(input.agent))
      throw new TaskError(`Unknown agent "${input.agent}". Agents you can delegate to: ${[...agents.keys()].join(", ")}.`)
    if (!input.prompt.trim()) throw new TaskError("The prompt is empty: say what the agent should do.")
    const parentTask = this.bySessionId(input.parentSessionId)
    const depth = parentTask ? parentTask.depth + 1 : 1
    if (depth > this.opts.maxDepth)
      throw new TaskError(`Delegation is nested too deep (${depth} > ${this.opts.maxDepth}). Do this work yourself instead of delegating it.`)
    const dependsOn = [...new Set(input.dependsOn ?? [])]
    const ancestors = new Set<string>()
    for (let t = parentTask; t; t = t.parentTaskId ? this.get(t.parentTaskId) : undefined) ancestors.add(t.id)
    for (const d of dependsOn) {
      const dep = this.get(d)
      if (!dep) throw new TaskError(`depends_on names "${d}", which is not a task. Use ids returned by delegate (see the tasks tool).`)
      if (ancestors.has(d))
        throw new TaskError(`depends_on "${d}" is a task that is waiting for this one (a cycle): it would never start. Remove it from depends_on.`)
      if ((dep.status === "failed" || dep.status === "cancelled") && !input.acceptPartial)
        throw new TaskError(`depends_on "${d}" already ended ${dep.status}; it will produce no result to hand over.`)
    }
    const now = this.deps.clock.now()
    const info = agents.get(input.agent)
    const maxTurns = lower(input.maxTurns, info?.maxTurns ?? (this.opts.maxTurns || undefined))
    const maxTokens = lower(input.maxTokens, info?.maxTokens ?? (this.opts.maxTokens || undefined))
    const task: Task = {
      id: this.deps.ids.id(IdPrefix.task),
      agent: input.agent,
      title: (input.title ?? input.prompt.split("\n")[0]!).slice(0, 80),
      prompt: input.prompt,
      priority: input.priority ?? "medium",
      status: "queued",
      parentSessionId: input.parentSessionId,
      parentTaskId: parentTask?.id,
      depth,
      scope: input.scope ?? [],
      dependsOn,
      ...(input.acceptPartial ? { acceptPartial: true } : {}),
      ...(input.timeoutMs ? { timeoutMs: input.timeoutMs } : {}),
      ...(maxTurns ? { maxTurns } : {}),
      ...(maxTokens ? { maxTokens } : {}),
      ...(input.workflow ? { workflow: input.workflow } : {}),
      createdAt: now,
      updatedAt: now,
      lastActivityAt: now,
    }
    await this.ports.write({ type: "task.created", task })
    this.schedule(task.id)
    return task
  }

  private schedule(id: string): void {
    void this.start(id).catch((err) => this.deps.log.log("error", "task start failed", { id, error: String(err) }))
  }

  private keyOf(task: Task): string {
    return this.ports.agents().get(task.agent)?.key ?? "default"
  }

  /** Dependencies, then the write scope, then a model slot — only the last one is a slot. */
  private async start(id: string): Promise<void> {
    const deps = await Promise.all(this.get(id)!.dependsOn.map((d) => this.ended(d)))
    const bad = deps.find((d) => d.status !== "completed")
    if (bad && !this.get(id)!.acceptPartial) return void (await this.finish(id, "failed", { error: `dependency ${bad.id} (${bad.agent}: ${bad.title}) ended ${bad.status}` }))
    if (this.get(id)!.status !== "queued") return
    await this.scopes.claim(this.get(id)!, (other) => this.get(other), (other) => this.ended(other))
    const task = this.get(id)!
    if (task.status !== "queued") return this.scopes.release(id)
    const group = task.workflow?.parallel ? await this.groupSlot(task.workflow.id, task.workflow.parallel) : undefined
    if (group) this.groupLeases.set(id, group)
    if (this.get(id)!.status !== "queued") {
      this.releaseGroup(id)
      return this.scopes.release(id)
    }
    const lease = await this.slots.acquire(this.keyOf(task), SLOT_PRIORITY[task.priority])
    if (this.get(id)!.status !== "queued") {
      lease.release()
      return this.scopes.release(id)
    }
    this.leases.set(id, lease)
    await this.launch(task, deps)
  }

  private groupSlot(key: string, limit: number): Promise<Lease> {
    let g = this.groups.get(key)
    if (!g) this.groups.set(key, (g = new Slots(limit)))
    return g.acquire("run")
  }

  private releaseGroup(id: string): void {
    this.groupLeases.get(id)?.release()
    this.groupLeases.delete(id)
  }

  /** Tasks waiting for a slot under this agent's concurrency key. */
  waitingFor(agent: string): number {
    return this.slots.waiting(this.ports.agents().get(agent)?.key ?? "default")
  }

  /** Slots in use under this agent's concurrency key. */
  busySlots(agent: string): number {
    return this.slots.inUse(this.ports.agents().get(agent)?.key ?? "default")
  }

  /** Tasks between "slot granted" and "prompt sent" (for shutdown and tests). */
  get launching(): number {
    return this.launches
  }

  private async launch(task: Task, deps: Task[]): Promise<void> {
    const agent = this.ports.agents().get(task.agent)
    this.launches++
    try {
      const sessionId = await this.deps.host.createSession({ parentId: task.parentSessionId, title: `${task.agent}: ${task.title}` })
      this.bySession.set(sessionId, task.id)
      this.ports.sessionStarted(sessionId, task.parentSessionId, `${task.agent}: ${task.title}`)
      // Both before the prompt (a restart must never launch a task twice), neither after the other.
      await Promise.all([this.writeContext(task), this.update(task.id, { status: "running", sessionId, lastActivityAt: this.deps.clock.now() })])
      this.watchdog.watch(task.id, task.timeoutMs)
      let text = task.prompt
      if (deps.length) {
        text += "\n\nResults of the tasks this one builds on:\n"
        for (const d of deps)
          text +=
            d.status === "completed"
              ? `\n[${d.id} · ${d.agent} · ${d.title}]\n${(d.result ?? "").slice(0, HANDOFF_CHARS)}\n`
              : `\n[${d.id} · ${d.agent} · ${d.title} · ${d.status.toUpperCase()}: no result — ${d.error ?? "no reason given"}]\n`
      }
      await this.deps.host.prompt(sessionId, { agent: task.agent, text, delegates: agent?.delegates ?? false, meta: { source: "agent", from: "nso", kind: "assignment", ids: [task.id] } })
    } catch (err) {
      await this.finish(task.id, "failed", { error: `could not start: ${String(err)}` })
    } finally {
      this.launches--
    }
  }

  private async writeContext(task: Task): Promise<void> {
    const dir = join(this.ports.projectDir, this.ports.stateDir, "tasks", task.id)
    await this.deps.fs.mkdir(dir, { recursive: true })
    const lines = [
      `# Task ${task.id}: ${task.title}`,
      "",
      `- Agent: ${task.agent}`,
      `- Delegated from session: ${task.parentSessionId}${task.parentTaskId ? ` (task ${task.parentTaskId})` : ""}`,
      `- Write scope: ${task.scope.length ? task.scope.join(", ") : "(unrestricted)"}`,
      `- Depends on: ${task.dependsOn.length ? task.dependsOn.join(", ") : "(nothing)"}`,
      "",
      "## Prompt",
      "",
      task.prompt,
      "",
      "## Isolation header",
      "",
      this.ports.isolationHeader(task),
      "",
    ]
    await this.deps.fs.writeFile(join(dir, "context.md"), lines.join("\n"))
  }

  private async update(id: string, patch: Partial<Pick<Task, "status" | "sessionId" | "lastActivityAt" | "result" | "error" | "usage" | "retries">>): Promise<void> {
    await this.ports.write({ type: "task.updated", id, patch })
  }

  // ----- completion ---------------------------------------------------------------------------

  /**
   * An assistant message of a task's session was created or changed (from events), with its
   * usage so far. Counts the task's turns and tokens, journals them when a message completes,
   * and stops the task at its budget.
   */
  observeAssistant(sessionId: string, messageId: string, outcome: Omit<AssistantOutcome, "text">, usage?: Omit<TaskUsage, "turns">): void {
    const id = this.bySession.get(sessionId)
    if (!id) return
    this.replies.observeAssistant(sessionId, messageId, outcome)
    const task = this.get(id)
    if (!task || !isLive(task.status)) return
    const r = this.retrying.get(id)
    // The retry's reply has begun: from now on, an idle or an error is about the retried work.
    if (r?.sentAt !== undefined && outcome.createdAt >= r.sentAt) this.retrying.delete(id)
    let s = this.spend.get(id)
    if (!s) this.spend.set(id, (s = { base: task.usage ?? NO_USAGE, messages: new Map() }))
    const fresh = !s.messages.has(messageId)
    s.messages.set(messageId, { ...(usage ?? s.messages.get(messageId) ?? NO_USAGE), turns: 1 })
    const total = [...s.messages.values()].reduce(addUsage, s.base)
    if (fresh && task.maxTurns && total.turns > task.maxTurns) return this.overBudget(id, `it reached its limit of ${task.maxTurns} model turns`)
    if (!outcome.completed) return
    if (!sameUsage(total, task.usage)) void this.update(id, { usage: total }).catch((err) => this.deps.log.log("warn", "recording a task's usage failed", { id, error: String(err) }))
    if (task.maxTokens && totalTokens(total) >= task.maxTokens) this.overBudget(id, `it used ${totalTokens(total).toLocaleString("en-US")} tokens, at its budget of ${task.maxTokens.toLocaleString("en-US")}`)
  }

  private overBudget(id: string, reason: string): void {
    void this.stop(id, reason).catch((err) => this.deps.log.log("error", "stopping a task at its budget failed", { id, error: String(err) }))
  }

  /** A text part of a task's session changed (from events); synthetic parts are not the agent's words. */
  observeText(sessionId: string, messageId: string, partId: string, text: string): void {
    this.replies.observeText(sessionId, messageId, partId, text)
  }

  /** The child went idle (or the sweep found it idle): confirm against its last message. */
  async onIdle(sessionId: string): Promise<void> {
    const task = this.bySessionId(sessionId)
    if (!task || !isLive(task.status) || task.status === "waiting_for_answer" || this.interrupted.has(task.id) || this.confirming.has(task.id) || this.retrying.has(task.id)) return
    // Work it handed on is not finished, or results for it wait in the buffer: it is not done.
    // It does no model work while it waits, so its slot goes to the tasks it waits for.
    if (this.awaitsOwn(task)) return this.releaseSlot(task.id)
    this.confirming.add(task.id)
    try {
      const last = this.replies.finished(sessionId) ?? (await this.deps.host.lastAssistant(sessionId))
      const t = this.get(task.id)!
      if (!isLive(t.status) || t.status === "waiting_for_answer" || this.interrupted.has(t.id) || this.retrying.has(t.id) || !last?.completed || this.awaitsOwn(t)) return
      const v = verdict(last)
      if (v.status === "cancelled") {
        // NSO's own cancel finishes the task before it aborts the session, so an abort seen
        // here came from elsewhere — most often OpenCode quitting. That is not the user
        // cancelling the work: hold it and let the close policy decide.
        await this.markInterrupted(t.id)
        await this.ports.onInterrupted(this.get(t.id)!, "stopped")
        return
      }
      if (v.status === "failed") return await this.failed(t.id, v.error!, last.error?.transient === true)
      await this.finish(t.id, v.status, v)
    } finally {
      this.confirming.delete(task.id)
    }
  }

  /** Tasks it delegated still run, or it waits for messages or team runs (see TaskPorts.awaiting). */
  private awaitsOwn(t: Task): boolean {
    return !!t.sessionId && (this.running(t.sessionId) > 0 || this.ports.awaiting(t.sessionId) > 0)
  }

  async onError(sessionId: string, error: { name: string; message: string; aborted: boolean; transient?: boolean }): Promise<void> {
    const task = this.bySessionId(sessionId)
    if (!task || !isLive(task.status)) return
    if (error.aborted) return // an abort ends the task through its idle event, or through cancel
    await this.failed(task.id, `${error.name}: ${error.message}`, error.transient === true)
  }

  /**
   * The task's model work failed. A transient failure (provider, rate limit, network) is retried
   * after a backoff while `tasks.retry.attempts` allows, in the same session (the agent keeps its
   * work so far); anything else, or the last attempt, fails the task. Each retry is journaled on
   * the task (`retries`).
   */
  private async failed(id: string, error: string, transient: boolean): Promise<void> {
    const t = this.get(id)
    if (!t || !isLive(t.status) || this.retrying.has(id)) return
    const done = t.retries?.length ?? 0
    const { attempts, backoffMs, maxBackoffMs } = this.opts.retry
    if (!transient || done >= attempts || !t.sessionId)
      return this.finish(id, "failed", { error: done ? `${error} (after ${done} automatic retr${done === 1 ? "y" : "ies"})` : error })
    const delayMs = Math.min(backoffMs * 2 ** done, maxBackoffMs)
    const entry = { timer: undefined as ReturnType<Deps["timers"]["setTimeout"]> | undefined }
    this.retrying.set(id, entry)
    // Waiting gives the model slot back, as waiting for the user does.
    this.releaseSlot(id)
    await this.update(id, { retries: [...(t.retries ?? []), { at: this.deps.clock.now(), reason: error, delayMs }], lastActivityAt: this.deps.clock.now() })
    this.deps.log.log("warn", "a task failed for a transient reason; retrying", { id, attempt: done + 1, of: attempts, delayMs, error })
    if (this.retrying.get(id) !== entry) return // cancelled meanwhile
    entry.timer = this.deps.timers.setTimeout(
      () => void this.retry(id, error, done + 1).catch((err) => this.finish(id, "failed", { error: `${error}; the retry could not start: ${String(err)}` })),
      delayMs,
    )
  }

  private async retry(id: string, error: string, attempt: number): Promise<void> {
    const t = this.get(id)
    if (!t?.sessionId || !isLive(t.status) || !this.retrying.has(id)) return
    await this.takeSlot(t)
    if (!isLive(this.get(id)!.status) || !this.retrying.has(id)) return this.releaseSlot(id)
    this.replies.restart(t.sessionId)
    this.watchdog.touch(id)
    this.retrying.set(id, { sentAt: this.deps.clock.now() })
    await this.deps.host.prompt(t.sessionId, {
      agent: t.agent,
      text: `[NSO · system] Your last step failed for a reason outside your work (${error}). Automatic retry ${attempt} of ${this.opts.retry.attempts}: continue your task where you left off; your earlier messages are above.`,
      delegates: this.ports.agents().get(t.agent)?.delegates ?? false,
      meta: { source: "system", from: "nso", kind: "status", ids: [id] },
    })
  }

  /** Any sign of life from a task's session (message parts, tool calls). */
  touch(sessionId: string): void {
    const id = this.bySession.get(sessionId)
    if (!id) return
    this.watchdog.touch(id)
    const t = this.get(id)
    if (t?.status === "stalled" && !this.interrupted.has(id)) void this.update(id, { status: "running", lastActivityAt: this.deps.clock.now() })
  }

  /**
   * The task's agent starts or stops waiting for an answer. Waiting gives its model slot back;
   * going on takes one again, so this resolves only once the agent may work.
   */
  async setWaiting(id: string, waiting: boolean): Promise<void> {
    const t = this.get(id)
    if (!t || !isLive(t.status)) return
    if (waiting) this.releaseSlot(id)
    else await this.takeSlot(t)
    await this.update(id, { status: waiting ? "waiting_for_answer" : "running", lastActivityAt: this.deps.clock.now() })
    this.watchdog.touch(id)
  }

  private async takeSlot(t: Task): Promise<void> {
    if (this.leases.has(t.id)) return
    const lease = await this.slots.acquire(this.keyOf(t), SLOT_PRIORITY[t.priority])
    const now = this.get(t.id)
    if (!now || TERMINAL_TASK_STATUSES.has(now.status) || this.leases.has(t.id)) return lease.release()
    this.leases.set(t.id, lease)
  }

  private releaseSlot(id: string): void {
    this.leases.get(id)?.release()
    this.leases.delete(id)
  }

  private async finish(id: string, status: TaskStatus, out: { result?: string; error?: string }): Promise<void> {
    const t = this.get(id)
    // An error event and an idle event can both try to end a task: only the first one does.
    if (!t || TERMINAL_TASK_STATUSES.has(t.status) || this.finishing.has(id)) return
    this.finishing.add(id)
    // The state changes now; the record is awaited below, with the message that reports it.
    const updated = this.update(id, { status, ...(out.result !== undefined ? { result: out.result } : {}), ...(out.error !== undefined ? { error: out.error } : {}), lastActivityAt: this.deps.clock.now() })
    this.finishing.delete(id)
    // The model work is over: the next task may start while the end is being written.
    this.releaseSlot(id)
    this.releaseGroup(id)
    this.spend.delete(id)
    const r = this.retrying.get(id)
    if (r?.timer) this.deps.timers.clearTimeout(r.timer)
    this.retrying.delete(id)
    this.watchdog.unwatch(id)
    this.scopes.release(id)
    this.interrupted.delete(id)
    if (t.sessionId) this.replies.forget(t.sessionId)
    const done = this.get(id)!
    const e = this.ends.get(id)
    this.ends.delete(id)
    e?.resolve(done)
    for (const fn of this.endListeners) fn(done)
    // A task that failed leaves nobody to hear what it started: stop that too, deepest first.
    if (status === "failed")
      for (const d of descendants(this.ports.state.tasks, id).filter((x) => !TERMINAL_TASK_STATUSES.has(x.status)).sort((a, b) => b.depth - a.depth))
        await this.cancel(d.id, `the task that started it (${t.agent}: ${t.title}) failed`, { tell: false }).catch((err) => this.deps.log.log("warn", "could not stop a failed task's sub-task", { id: d.id, error: String(err) }))
    // The canceller reports a cancel; a team run reports its own members' ends as one result;
    // a caller waiting in its tool call gets the result there.
    if (status === "cancelled" || t.workflow?.report === "workflow" || this.inline.has(id)) return void (await updated)
    // One group commit for the end and its report.
    await Promise.all([updated, this.report(done)])
  }

  /** A finished task's result (or failure, with what it had written) for whoever delegated it, with one line of what it spent. */
  private report(t: Task): Promise<Envelope> {
    const retried = t.retries?.length ? ` · ${t.retries.length} automatic retr${t.retries.length === 1 ? "y" : "ies"}` : ""
    const spent = t.usage ? `\n\n(${usageLine(t.usage)}${retried})` : ""
    const partial = t.result ? `\n\nPartial result (what it had written so far):\n${t.result}` : ""
    return this.ports.post({
      source: "agent",
      from: t.agent,
      to: "oracle",
      kind: t.status === "completed" ? "completion" : "failure",
      taskId: t.id,
      text: t.status === "completed" ? `${t.result ?? ""}${spent}` : `Task "${t.title}" failed: ${t.error}${partial}${spent}`,
    })
  }

  /**
   * A caller will take this task's result in its own tool call (delegate with wait): while it
   * waits, the result is not also posted. `release` hands reporting back (the wait timed out or
   * was aborted); a task that ended meanwhile is reported then.
   */
  claimResult(id: string): { release(): Promise<void> } {
    this.inline.add(id)
    return {
      release: async () => {
        if (!this.inline.delete(id)) return
        const t = this.get(id)
        if (t && (t.status === "completed" || t.status === "failed") && t.workflow?.report !== "workflow") await this.report(t)
      },
    }
  }

  /** The caller got the result in its tool call: nothing is left to report. */
  resultTaken(id: string): void {
    this.inline.delete(id)
  }

  // ----- cancel -------------------------------------------------------------------------------

  /**
   * Cancels the task and everything it started, deepest first, and tells the session that
   * delegated it — unless the caller tells it itself (`tell: false`, e.g. the Oracle cancelling
   * through its tasks tool). Returns what was cancelled.
   */
  async cancel(id: string, reason = "cancelled", opts: { tell?: boolean } = {}): Promise<Task[]> {
    const root = this.get(id)
    if (!root) throw new TaskError(`No task "${id}". Use the tasks tool to see task ids.`)
    const family = [root, ...descendants(this.ports.state.tasks, id)].filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    family.sort((a, b) => b.depth - a.depth)
    const out: Task[] = []
    for (const t of family) {
      await this.finish(t.id, "cancelled", { error: reason })
      if (t.sessionId) await this.deps.host.abort(t.sessionId).catch((err) => this.deps.log.log("warn", "abort failed", { id: t.id, error: String(err) }))
      out.push(this.get(t.id)!)
    }
    if (out.length && opts.tell !== false) {
      const others = out.length - 1
      await this.ports.post({
        source: "system",
        from: "nso",
        to: "oracle",
        kind: "status",
        taskId: root.id,
        text: `Task "${root.title}" (${root.agent}) was cancelled: ${reason}${others ? `, with ${others} task(s) it started` : ""}.`,
      })
    }
    return out
  }

  /**
   * Ends a task that hit one of its limits (time, turns) as failed — not cancelled: nobody chose
   * to stop it, and whoever waits for it (a team's synthesis) must hear why it has no result.
   */
  async stop(id: string, reason: string): Promise<void> {
    const t = this.get(id)
    if (!t || TERMINAL_TASK_STATUSES.has(t.status)) return
    for (const d of descendants(this.ports.state.tasks, id).filter((x) => !TERMINAL_TASK_STATUSES.has(x.status)).sort((a, b) => b.depth - a.depth))
      await this.cancel(d.id, `the task that started it stopped: ${reason}`, { tell: false })
    const partial = t.sessionId ? this.replies.said(t.sessionId) : undefined
    await this.finish(id, "failed", { error: `stopped: ${reason}`, ...(partial ? { result: partial } : {}) })
    if (t.sessionId) await this.deps.host.abort(t.sessionId).catch((err) => this.deps.log.log("warn", "abort failed", { id, error: String(err) }))
  }

  // ----- watchdog and sweep -------------------------------------------------------------------

  /** The watchdog saw no activity for stallMs: report a stall once. Waiting for the user is not a stall. */
  private async onQuiet(id: string, quietMs: number): Promise<void> {
    const t = this.get(id)
    if (!t || !isLive(t.status) || t.status === "waiting_for_answer" || this.awaitsOwn(t)) return
    if (t.status !== "stalled") {
      await this.update(id, { status: "stalled" })
      await this.ports.post({
        source: "system",
        from: "nso",
        to: "oracle",
        kind: "status",
        taskId: id,
        text: `Task "${t.title}" (${t.agent}) has shown no activity for ${Math.round(quietMs / 60_000)} min. ${this.opts.killStalled ? "It was cancelled (killStalled is on)." : "It keeps running; cancel it (tasks with cancel: true) if it is stuck."}`,
      })
      if (this.opts.killStalled) await this.cancel(id, "stalled", { tell: false })
    }
  }

  /** Starts the slow sweep that repairs lost completion events (does not keep the process alive). */
  startSweep(): void {
    if (this.sweep || this.opts.reconcileMs <= 0) return
    this.sweep = this.deps.timers.setInterval(() => void this.reconcile(), this.opts.reconcileMs, { keepAlive: false })
  }

  async reconcile(): Promise<void> {
    const live = [...this.ports.state.tasks.values()].filter((t) => (t.status === "running" || t.status === "stalled") && t.sessionId && !this.interrupted.has(t.id))
    if (!live.length) return
    const busy = await this.deps.host.busySessions().catch(() => undefined)
    if (!busy) return
    for (const t of live) if (!busy.has(t.sessionId!)) await this.onIdle(t.sessionId!)
  }

  // ----- restart ------------------------------------------------------------------------------

  /**
   * After a restart: queued tasks start again; a task that was running finishes if its child
   * already did, otherwise it is handled by the close policy (`onInterrupted`).
   */
  async recover(): Promise<void> {
    for (const t of [...this.ports.state.tasks.values()]) {
      if (TERMINAL_TASK_STATUSES.has(t.status)) continue
      const last = t.sessionId && t.status !== "queued" ? await this.deps.host.lastAssistant(t.sessionId).catch(() => undefined) : undefined
      const r = recoveryFor(t, last)
      switch (r.action) {
        case "requeue":
          this.schedule(t.id)
          break
        case "fail":
          await this.finish(t.id, "failed", { error: r.error })
          break
        case "complete":
          await this.finish(t.id, "completed", { result: r.result })
          break
        case "await_answer":
          this.scopes.hold(t.id)
          this.watchdog.watch(t.id, t.timeoutMs)
          break
        case "interrupted":
          this.scopes.hold(t.id)
          this.interrupted.add(t.id)
          await this.ports.onInterrupted(t, "restart")
          break
      }
    }
  }

  /**
   * Sends an interrupted task's agent back to work (close policy `persist`, or the user said
   * resume). Resolves once the prompt is sent — after a model slot is free.
   */
  async resume(id: string): Promise<void> {
    const t = this.get(id)
    if (!t || !t.sessionId || TERMINAL_TASK_STATUSES.has(t.status)) return
    this.scopes.hold(id)
    await this.takeSlot(t)
    if (TERMINAL_TASK_STATUSES.has(this.get(id)!.status)) return
    this.interrupted.delete(id)
    await this.update(id, { status: "running", lastActivityAt: this.deps.clock.now() })
    this.watchdog.watch(id, t.timeoutMs)
    await this.deps.host.prompt(t.sessionId, {
      agent: t.agent,
      text: "[NSO · system] Your work on this task was interrupted (OpenCode stopped or restarted). Continue where you left off; your earlier messages are above.",
      delegates: this.ports.agents().get(t.agent)?.delegates ?? false,
      meta: { source: "system", from: "nso", kind: "status", ids: [id] },
    })
  }

  /** Whether the task waits for someone to decide resume or cancel. */
  isInterrupted(id: string): boolean {
    return this.interrupted.has(id)
  }

  /** Holds an interrupted task until someone decides (close policy `ask`); it shows as stalled. */
  async markInterrupted(id: string): Promise<void> {
    this.interrupted.add(id)
    this.releaseSlot(id)
    if (this.get(id)?.status !== "stalled") await this.update(id, { status: "stalled" })
  }

  dispose(): void {
    if (this.sweep) this.deps.timers.clearInterval(this.sweep)
    this.watchdog.dispose()
    this.slots.clear()
    for (const g of this.groups.values()) g.clear()
  }
}

const isLive = (s: TaskStatus) => s === "running" || s === "waiting_for_answer" || s === "stalled"

/** A limit asked for in a call may lower the configured one, never raise it. */
const lower = (asked: number | undefined, configured: number | undefined) => (asked && configured ? Math.min(asked, configured) : (asked ?? configured))

const sameUsage = (a: TaskUsage, b: TaskUsage | undefined) =>
  !!b && a.turns === b.turns && a.input === b.input && a.output === b.output && a.reasoning === b.reasoning && a.cacheRead === b.cacheRead && a.cacheWrite === b.cacheWrite && a.cost === b.cost
