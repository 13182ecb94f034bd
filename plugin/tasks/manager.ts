import { join } from "node:path"
import PQueue from "p-queue"
import type { AssistantOutcome, Deps, TimerHandle } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import type { TaskOptions } from "../options.js"
import { IdPrefix, TERMINAL_TASK_STATUSES, type Envelope, type JournalEvent, type Task, type TaskStatus } from "../protocol.js"
import { scopesOverlap } from "./scope.js"

/**
 * Background delegation: a task's whole life, from `delegate` to its result in the delegating
 * session's buffer. Completion comes from session events, confirmed against the child's last
 * assistant message; a slow sweep repairs lost events; a watchdog reports stalls.
 */

export interface AgentInfo {
  /** Concurrency key: the agent's model, else "default". */
  key: string
  /** Per-prompt tool switches for the agent's session. */
  tools: Record<string, boolean>
}

export interface TaskPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  post(msg: Omit<Envelope, "id" | "time" | "hops"> & { sessionId: string }): Promise<Envelope>
  /** Known agents NSO may delegate to. */
  agents(): Map<string, AgentInfo>
  /** The isolation header text for a task (written into its context file). */
  isolationHeader(task: Task): string
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
}

/** An error whose message is written for the model that made the call. */
export class TaskError extends Error {
  override name = "TaskError"
}

/** Most characters of a dependency's result handed to the next task. */
const HANDOFF_CHARS = 4_000

export class TaskManager {
  private queues = new Map<string, PQueue>()
  private ends = new Map<string, { promise: Promise<Task>; resolve: (t: Task) => void }>()
  private bySession = new Map<string, string>()
  private activity = new Map<string, number>()
  private watchdogs = new Map<string, TimerHandle>()
  private limits = new Map<string, TimerHandle>()
  private confirming = new Set<string>()
  private sweep: TimerHandle | undefined
  private endListeners = new Set<(t: Task) => void>()
  /** Tasks that hold their write scope: claimed synchronously, so two starts cannot both pass. */
  private claimed = new Set<string>()
  private launches = 0
  private finishing = new Set<string>()
  /** The latest assistant message of each running task's session, fed by events. */
  private replies = new Map<string, { messageId: string; outcome: AssistantOutcome; parts: Map<string, string> }>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "host" | "log" | "fs">,
    private readonly opts: TaskOptions,
    private readonly ports: TaskPorts,
  ) {
    for (const t of ports.state.tasks.values()) if (t.sessionId) this.bySession.set(t.sessionId, t.id)
  }

  get(id: string): Task | undefined {
    return this.ports.state.tasks.get(id)
  }

  bySessionId(sessionId: string): Task | undefined {
    const id = this.bySession.get(sessionId)
    return id ? this.get(id) : undefined
  }

  /** The session the user talks in, at the top of this task's tree. */
  rootSession(task: Task): string {
    let t = task
    for (let i = 0; i < 100 && t.parentTaskId; i++) {
      const p = this.get(t.parentTaskId)
      if (!p) break
      t = p
    }
    return t.parentSessionId
  }

  /** Tasks delegated from this session or from any task under it. */
  tree(sessionId: string): Task[] {
    // One pass per nesting level (bounded by maxDepth); called on every delivery decision.
    const all = [...this.ports.state.tasks.values()]
    const out = new Set<Task>()
    const sessions = new Set([sessionId])
    let grew = true
    while (grew) {
      grew = false
      for (const t of all) {
        if (out.has(t) || !sessions.has(t.parentSessionId)) continue
        out.add(t)
        if (t.sessionId) sessions.add(t.sessionId)
        grew = true
      }
    }
    return [...out].sort((a, b) => a.createdAt - b.createdAt)
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
      if (dep.status === "failed" || dep.status === "cancelled")
        throw new TaskError(`depends_on "${d}" already ended ${dep.status}; it will produce no result to hand over.`)
    }
    const now = this.deps.clock.now()
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

  private queue(key: string): PQueue {
    let q = this.queues.get(key)
    if (!q) {
      q = new PQueue({ concurrency: this.opts.concurrency })
      this.queues.set(key, q)
    }
    return q
  }

  private async start(id: string): Promise<void> {
    let task = this.get(id)!
    // Sequential handoff: wait for the tasks this one depends on.
    const deps = await Promise.all(task.dependsOn.map((d) => this.ended(d)))
    const bad = deps.find((d) => d.status !== "completed")
    if (bad) return void (await this.finish(id, "failed", { error: `dependency ${bad.id} (${bad.agent}: ${bad.title}) ended ${bad.status}` }))
    const agent = this.ports.agents().get(task.agent)
    const priority = { low: 0, medium: 1, high: 2 }[task.priority]
    await this.queue(agent?.key ?? "default").add(
      async () => {
        task = this.get(id)!
        if (task.status !== "queued") return
        await this.waitForScope(task)
        if (this.get(id)!.status !== "queued") return
        await this.launch(task, deps)
        await this.ended(id)
      },
      { priority },
    )
  }

  /** Tasks with overlapping write scopes never run at the same time. */
  private async waitForScope(task: Task): Promise<void> {
    for (;;) {
      const clash = [...this.claimed].map((id) => this.get(id)!).find((t) => t && t.id !== task.id && scopesOverlap(t.scope, task.scope))
      if (!clash) {
        this.claimed.add(task.id)
        return
      }
      await this.ended(clash.id)
    }
  }

  /** Tasks waiting for a slot under this agent's concurrency key. */
  waitingFor(agent: string): number {
    return this.queues.get(this.ports.agents().get(agent)?.key ?? "default")?.size ?? 0
  }

  /** Slots in use under this agent's concurrency key. */
  busySlots(agent: string): number {
    return this.queues.get(this.ports.agents().get(agent)?.key ?? "default")?.pending ?? 0
  }

  /** Tasks between "start" and "prompt sent" (for shutdown and tests). */
  get launching(): number {
    return this.launches
  }

  private async launch(task: Task, deps: Task[]): Promise<void> {
    const agent = this.ports.agents().get(task.agent)
    this.launches++
    try {
      const sessionId = await this.deps.host.createSession({ parentId: task.parentSessionId, title: `${task.agent}: ${task.title}` })
      this.bySession.set(sessionId, task.id)
      await this.writeContext(task)
      await this.update(task.id, { status: "running", sessionId, lastActivityAt: this.deps.clock.now() })
      this.watch(task.id)
      let text = task.prompt
      if (deps.length) {
        text += "\n\nResults of the tasks this one builds on:\n"
        for (const d of deps) text += `\n[${d.id} · ${d.agent} · ${d.title}]\n${(d.result ?? "").slice(0, HANDOFF_CHARS)}\n`
      }
      await this.deps.host.prompt(sessionId, { agent: task.agent, text, tools: agent?.tools, meta: { source: "agent", from: "nso", kind: "assignment", ids: [task.id] } })
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

  private async update(id: string, patch: Partial<Pick<Task, "status" | "sessionId" | "lastActivityAt" | "result" | "error">>): Promise<void> {
    await this.ports.write({ type: "task.updated", id, patch })
  }

  // ----- completion ---------------------------------------------------------------------------

  /** An assistant message of a task's session was created or changed (from events). */
  observeAssistant(sessionId: string, messageId: string, outcome: Omit<AssistantOutcome, "text">): void {
    if (!this.bySession.has(sessionId)) return
    let r = this.replies.get(sessionId)
    if (!r || r.messageId !== messageId) {
      if (r && outcome.createdAt < r.outcome.createdAt) return
      r = { messageId, outcome: { ...outcome, text: "" }, parts: new Map() }
      this.replies.set(sessionId, r)
    }
    r.outcome = { ...outcome, text: r.outcome.text }
  }

  /** A text part of a task's session changed (from events); synthetic parts are not the agent's words. */
  observeText(sessionId: string, messageId: string, partId: string, text: string): void {
    const r = this.replies.get(sessionId)
    if (!r || r.messageId !== messageId) return
    r.parts.set(partId, text)
    r.outcome.text = [...r.parts.values()].join("\n").trim()
  }

  /** The last assistant message: from events if seen, else asked of OpenCode (e.g. after a restart). */
  private async lastReply(sessionId: string): Promise<AssistantOutcome | undefined> {
    const r = this.replies.get(sessionId)
    if (r?.outcome.completed) return r.outcome
    return this.deps.host.lastAssistant(sessionId)
  }

  /** The child went idle (or the sweep found it idle): confirm against its last message. */
  async onIdle(sessionId: string): Promise<void> {
    const task = this.bySessionId(sessionId)
    if (!task || !isLive(task.status) || task.status === "waiting_for_answer" || this.confirming.has(task.id)) return
    this.confirming.add(task.id)
    try {
      const last = await this.lastReply(sessionId)
      const t = this.get(task.id)!
      if (!isLive(t.status) || !last || !last.completed) return
      if (last.error) {
        if (last.error.aborted) await this.finish(t.id, "cancelled", { error: "aborted" })
        else await this.finish(t.id, "failed", { error: `${last.error.name}: ${last.error.message}` })
      } else {
        await this.finish(t.id, "completed", { result: last.text || "(the agent finished without a summary)" })
      }
    } finally {
      this.confirming.delete(task.id)
    }
  }

  async onError(sessionId: string, error: { name: string; message: string }): Promise<void> {
    const task = this.bySessionId(sessionId)
    if (!task || !isLive(task.status)) return
    if (error.name === "MessageAbortedError") return // cancellation finishes the task itself
    await this.finish(task.id, "failed", { error: `${error.name}: ${error.message}` })
  }

  /** Any sign of life from a task's session (message parts, tool calls). */
  touch(sessionId: string): void {
    const id = this.bySession.get(sessionId)
    if (!id) return
    this.activity.set(id, this.deps.clock.now())
    const t = this.get(id)
    if (t?.status === "stalled") void this.update(id, { status: "running", lastActivityAt: this.deps.clock.now() })
  }

  async setWaiting(id: string, waiting: boolean): Promise<void> {
    const t = this.get(id)
    if (!t || !isLive(t.status)) return
    await this.update(id, { status: waiting ? "waiting_for_answer" : "running", lastActivityAt: this.deps.clock.now() })
    this.activity.set(id, this.deps.clock.now())
  }

  private async finish(id: string, status: TaskStatus, out: { result?: string; error?: string }): Promise<void> {
    const t = this.get(id)
    // An error event and an idle event can both try to end a task: only the first one does.
    if (!t || TERMINAL_TASK_STATUSES.has(t.status) || this.finishing.has(id)) return
    this.finishing.add(id)
    try {
      await this.update(id, { status, ...out, lastActivityAt: this.deps.clock.now() })
    } finally {
      this.finishing.delete(id)
    }
    this.unwatch(id)
    this.claimed.delete(id)
    if (t.sessionId) this.replies.delete(t.sessionId)
    const done = this.get(id)!
    const e = this.ends.get(id)
    this.ends.delete(id)
    e?.resolve(done)
    for (const fn of this.endListeners) fn(done)
    if (status === "cancelled") return // the canceller reports it
    await this.ports.post({
      sessionId: t.parentSessionId,
      source: "agent",
      from: t.agent,
      to: "oracle",
      kind: status === "completed" ? "completion" : "failure",
      priority: status === "completed" ? "medium" : "high",
      taskId: t.id,
      text: status === "completed" ? (out.result ?? "") : `Task "${t.title}" failed: ${out.error}`,
    })
  }

  // ----- cancel -------------------------------------------------------------------------------

  /**
   * Cancels the task and everything it started, deepest first, and tells the session that
   * delegated it — unless the caller tells it itself (`tell: false`, e.g. the Oracle's own
   * task_cancel). Returns what was cancelled.
   */
  async cancel(id: string, reason = "cancelled", opts: { tell?: boolean } = {}): Promise<Task[]> {
    const root = this.get(id)
    if (!root) throw new TaskError(`No task "${id}". Use the tasks tool to see task ids.`)
    const family = [root, ...this.descendants(id)].filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
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
        sessionId: root.parentSessionId,
        source: "system",
        from: "nso",
        to: "oracle",
        kind: "status",
        priority: "high",
        taskId: root.id,
        text: `Task "${root.title}" (${root.agent}) was cancelled: ${reason}${others ? `, with ${others} task(s) it started` : ""}.`,
      })
    }
    return out
  }

  private descendants(id: string): Task[] {
    const out: Task[] = []
    const frontier = [id]
    while (frontier.length) {
      const cur = frontier.pop()!
      for (const t of this.ports.state.tasks.values())
        if (t.parentTaskId === cur) {
          out.push(t)
          frontier.push(t.id)
        }
    }
    return out
  }

  // ----- watchdog and sweep -------------------------------------------------------------------

  private watch(id: string): void {
    this.activity.set(id, this.deps.clock.now())
    this.arm(id, this.opts.stallMs)
    if (this.opts.maxRuntimeMs > 0) {
      this.limits.set(
        id,
        this.deps.timers.setTimeout(() => {
          void this.cancel(id, `it ran longer than the ${this.opts.maxRuntimeMs} ms limit`).catch((err) =>
            this.deps.log.log("error", "cancelling a task over its time limit failed", { id, error: String(err) }),
          )
        }, this.opts.maxRuntimeMs),
      )
    }
  }

  private arm(id: string, ms: number): void {
    if (this.opts.stallMs <= 0) return
    const prev = this.watchdogs.get(id)
    if (prev) this.deps.timers.clearTimeout(prev)
    this.watchdogs.set(id, this.deps.timers.setTimeout(() => void this.checkStall(id), ms))
  }

  private unwatch(id: string): void {
    for (const m of [this.watchdogs, this.limits]) {
      const h = m.get(id)
      if (h) this.deps.timers.clearTimeout(h)
      m.delete(id)
    }
    this.activity.delete(id)
  }

  private async checkStall(id: string): Promise<void> {
    const t = this.get(id)
    if (!t || !isLive(t.status)) return
    const idleFor = this.deps.clock.now() - (this.activity.get(id) ?? t.lastActivityAt)
    // Waiting for the user is not a stall; neither is recent activity.
    if (t.status === "waiting_for_answer" || idleFor < this.opts.stallMs) return this.arm(id, Math.max(1, this.opts.stallMs - idleFor))
    if (t.status !== "stalled") {
      await this.update(id, { status: "stalled" })
      await this.ports.post({
        sessionId: t.parentSessionId,
        source: "system",
        from: "nso",
        to: "oracle",
        kind: "status",
        priority: "high",
        taskId: id,
        text: `Task "${t.title}" (${t.agent}) has shown no activity for ${Math.round(idleFor / 60_000)} min. ${this.opts.killStalled ? "It was cancelled (killStalled is on)." : "It keeps running; cancel it with task_cancel if it is stuck."}`,
      })
      if (this.opts.killStalled) return void (await this.cancel(id, "stalled", { tell: false }))
    }
    this.arm(id, this.opts.stallMs)
  }

  /** Starts the slow sweep that repairs lost completion events (does not keep the process alive). */
  startSweep(): void {
    if (this.sweep || this.opts.reconcileMs <= 0) return
    this.sweep = this.deps.timers.setInterval(() => void this.reconcile(), this.opts.reconcileMs, { keepAlive: false })
  }

  async reconcile(): Promise<void> {
    const live = [...this.ports.state.tasks.values()].filter((t) => (t.status === "running" || t.status === "stalled") && t.sessionId)
    if (!live.length) return
    const busy = await this.deps.host.busySessions().catch(() => undefined)
    if (!busy) return
    for (const t of live) if (!busy.has(t.sessionId!)) await this.onIdle(t.sessionId!)
  }

  /**
   * After a restart: queued tasks start again; a task that was running finishes if its child
   * already did, otherwise it is handled by the close policy.
   */
  async recover(onInterrupted: (t: Task) => Promise<void>): Promise<void> {
    for (const t of [...this.ports.state.tasks.values()]) {
      if (TERMINAL_TASK_STATUSES.has(t.status)) continue
      if (t.status === "queued") {
        this.schedule(t.id)
        continue
      }
      if (!t.sessionId) {
        await this.finish(t.id, "failed", { error: "interrupted by a restart before its session existed" })
        continue
      }
      const last = await this.deps.host.lastAssistant(t.sessionId).catch(() => undefined)
      if (last?.completed && last.createdAt >= t.createdAt && !last.error) {
        await this.finish(t.id, "completed", { result: last.text || "(the agent finished without a summary)" })
        continue
      }
      this.claimed.add(t.id)
      if (t.status === "waiting_for_answer") {
        // The asking call died with the server; the question stays open and its answer will
        // be forwarded to the session as a message.
        this.watch(t.id)
        continue
      }
      await onInterrupted(t)
    }
  }

  /** Sends an interrupted task's agent back to work (close policy `persist`, or the user said resume). */
  async resume(id: string): Promise<void> {
    const t = this.get(id)
    if (!t || !t.sessionId || TERMINAL_TASK_STATUSES.has(t.status)) return
    this.claimed.add(id)
    await this.update(id, { status: "running", lastActivityAt: this.deps.clock.now() })
    this.watch(id)
    await this.deps.host.prompt(t.sessionId, {
      agent: t.agent,
      text: "[NSO · system] The server restarted while you were working on this task. Continue where you left off; your earlier messages are above.",
      tools: this.ports.agents().get(t.agent)?.tools,
      meta: { source: "system", from: "nso", kind: "status", ids: [id] },
    })
  }

  /** Marks an interrupted task as stalled until someone decides (close policy `ask`). */
  async markInterrupted(id: string): Promise<void> {
    await this.update(id, { status: "stalled" })
  }

  dispose(): void {
    if (this.sweep) this.deps.timers.clearInterval(this.sweep)
    for (const id of [...this.watchdogs.keys(), ...this.limits.keys()]) this.unwatch(id)
    for (const q of this.queues.values()) q.clear()
  }
}

const isLive = (s: TaskStatus) => s === "running" || s === "waiting_for_answer" || s === "stalled"
