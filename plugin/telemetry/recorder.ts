import { createHash } from "node:crypto"
import type { Deps } from "../deps.js"
import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type JournalEvent, type Task, type Workflow } from "../protocol.js"
import type { Invocation, WorkflowEvent } from "./schema.js"

/**
 * Telemetry nobody has to write by hand: workflow events and one invocation line per task, derived
 * from what NSO journals anyway (tasks, team runs, handoffs) plus what OpenCode reports (token
 * usage, tool calls). Everything here is in-memory bookkeeping; the sinks write (batched) and a
 * sink's failure never reaches delegation.
 */

/** Where telemetry goes: the JSONL files (always), an OpenTelemetry exporter (when configured). */
export interface TelemetrySink {
  workflow(e: WorkflowEvent): void
  /** A task ended: its line, with the tool calls it made (for spans). */
  invocation(r: Invocation, tools: readonly ToolCall[]): void
}

export interface ToolCall {
  tool: string
  startedAt: number
  endedAt: number
  ok: boolean
}

export interface RecorderPorts {
  /** The task and run tables (read at the moment an event arrives). */
  tasks: ReadonlyMap<string, Task>
  runs: ReadonlyMap<string, Workflow>
  /** A profile's tags and specialization. */
  profile(agent: string): { tags: readonly string[]; specialization: string } | undefined
  /** The agents a team plans to run, for `agent_plan`. */
  plan(team: string): string[]
  /** Task text → keywords (analysis.keywordsOf). */
  keywords(text: string): string[]
  projectName: string
}

interface Usage {
  input: number
  output: number
  reasoning: number
  cacheRead: number
  cacheWrite: number
  cost: number
}

interface Live {
  createdAt: number
  firstRunAt?: number
  waitingSince?: number
  answerMs: number
  /** Assistant messages of its session: id → usage, and whether NSO's delivery started it. */
  messages: Map<string, Usage & { coordination: boolean }>
  model?: string
  tools: ToolCall[]
}

const iso = (ms: number) => new Date(ms).toISOString()
const secs = (ms: number) => Math.max(0, Math.round(ms) / 1000)

export class TelemetryRecorder {
  private live = new Map<string, Live>()
  private bySession = new Map<string, string>()
  /** Sessions where NSO's last delivery started a turn: their next assistant message is coordination. */
  private delivered = new Set<string>()
  private toolStarts = new Map<string, { sessionId: string; tool: string; at: number }>()
  /** Tokens of tasks that ended (newest kept), for views that show them after the end. */
  private spent = new Map<string, number>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "log">,
    private readonly ports: RecorderPorts,
    private readonly sinks: TelemetrySink[],
  ) {}

  /** Every journal event NSO writes passes here (after it is applied to the state). */
  observe(e: JournalEvent): void {
    try {
      this.apply(e, this.deps.clock.now())
    } catch (err) {
      this.deps.log.log("warn", "telemetry could not record an event", { type: e.type, error: String(err) })
    }
  }

  private apply(e: JournalEvent, now: number): void {
    switch (e.type) {
      case "task.created": {
        const t = e.task
        this.live.set(t.id, { createdAt: t.createdAt, answerMs: 0, messages: new Map(), tools: [] })
        // A task outside a team run is a workflow of one agent.
        if (!t.workflow)
          this.emit({ timestamp: iso(t.createdAt), event: "workflow_start", workflow_id: t.id, project_name: this.ports.projectName, agent_plan: [t.agent], nso: { kind: "task", session: t.parentSessionId } })
        return
      }
      case "task.updated": {
        const l = this.live.get(e.id)
        const t = this.ports.tasks.get(e.id)
        if (!l || !t) return
        if (e.patch.sessionId) this.bySession.set(e.patch.sessionId, e.id)
        const s = e.patch.status
        if (!s) return
        if (s === "running" && l.firstRunAt === undefined) l.firstRunAt = now
        if (s === "waiting_for_answer" && l.waitingSince === undefined) l.waitingSince = now
        if (s !== "waiting_for_answer" && l.waitingSince !== undefined) {
          l.answerMs += now - l.waitingSince
          l.waitingSince = undefined
        }
        if (TERMINAL_TASK_STATUSES.has(s)) this.ended(t, l, now)
        return
      }
      case "workflow.created": {
        const w = e.workflow
        this.emit({
          timestamp: iso(w.createdAt),
          event: "workflow_start",
          workflow_id: w.id,
          project_name: this.ports.projectName,
          agent_plan: this.ports.plan(w.team),
          nso: { kind: "team", team: w.team, pattern: w.pattern, session: w.parentSessionId },
        })
        return
      }
      case "workflow.handoff":
        this.emit({ timestamp: iso(e.handoff.at), event: "agent_handoff", workflow_id: e.id, from_agent: e.handoff.fromAgent, to_agent: e.handoff.toAgent, artifacts: e.handoff.artifacts })
        return
      case "workflow.updated": {
        const w = this.ports.runs.get(e.id)
        if (!w || !e.patch.phase || !TERMINAL_PHASES.has(e.patch.phase)) return
        const agents = [...this.ports.tasks.values()].filter((t) => t.workflow?.id === w.id).sort((a, b) => a.createdAt - b.createdAt).map((t) => t.agent)
        this.emit({
          timestamp: iso(now),
          event: "workflow_complete",
          workflow_id: w.id,
          duration_seconds: secs(now - w.createdAt),
          success: e.patch.phase === "completed",
          agents_executed: agents,
          nso: { kind: "team", team: w.team, pattern: w.pattern, phase: e.patch.phase },
        })
        return
      }
      default:
        return
    }
  }

  private ended(t: Task, l: Live, now: number): void {
    this.live.delete(t.id)
    if (t.sessionId) this.bySession.delete(t.sessionId)
    const usage = [...l.messages.values()]
    const sum = (k: keyof Usage) => usage.reduce((n, u) => n + u[k], 0)
    if (usage.length) this.spent.set(t.id, sum("input") + sum("output") + sum("reasoning"))
    if (this.spent.size > 5_000) this.spent.delete(this.spent.keys().next().value!)
    const queueMs = (l.firstRunAt ?? now) - l.createdAt
    const totalMs = now - l.createdAt
    const profile = this.ports.profile(t.agent)
    const outcome = t.status === "completed" ? "success" : t.status === "cancelled" ? "cancelled" : "failure"
    const run = t.workflow ? this.ports.runs.get(t.workflow.id) : undefined
    const r: Invocation = {
      timestamp: iso(now),
      event: "agent_invocation",
      task_id: t.id,
      agent: t.agent,
      ...(l.model ? { model: l.model } : {}),
      task_digest: createHash("sha256").update(t.prompt).digest("hex").slice(0, 16),
      keywords: this.ports.keywords(`${t.title}\n${t.prompt}`),
      tags: [...(profile?.tags ?? [])],
      ...(profile?.specialization ? { domain: profile.specialization } : {}),
      workflow_id: t.workflow?.id ?? t.id,
      ...(run ? { team: run.team } : {}),
      started_at: iso(l.createdAt),
      ended_at: iso(now),
      duration_seconds: secs(totalMs),
      active_seconds: secs(totalMs - queueMs - l.answerMs),
      waiting_seconds: { queue: secs(queueMs), answer: secs(l.answerMs) },
      outcome,
      success: outcome === "success",
      ...(t.error ? { error: t.error.slice(0, 300) } : {}),
      tokens: { input: sum("input"), output: sum("output"), reasoning: sum("reasoning"), cache_read: sum("cacheRead"), cache_write: sum("cacheWrite") },
      cost: sum("cost"),
      turns: usage.length,
      tool_calls: l.tools.length,
      retries: t.retries?.length ?? 0,
      delivery_turns: usage.filter((u) => u.coordination).length,
      coordination_tokens: usage.filter((u) => u.coordination).reduce((n, u) => n + u.input + u.output + u.reasoning, 0),
    }
    for (const s of this.sinks) this.safely(() => s.invocation(r, l.tools))
    if (!t.workflow)
      this.emit({ timestamp: iso(now), event: "workflow_complete", workflow_id: t.id, duration_seconds: secs(totalMs), success: outcome === "success", agents_executed: [t.agent], nso: { kind: "task" } })
  }

  /** Tokens a task used so far (input + output + reasoning), when known. */
  tokensOf(taskId: string): number | undefined {
    const l = this.live.get(taskId)
    if (!l) return this.spent.get(taskId)
    let n = 0
    for (const u of l.messages.values()) n += u.input + u.output + u.reasoning
    return l.messages.size ? n : undefined
  }

  /** An assistant message of a session changed (from events): its usage so far, and its model. */
  usage(sessionId: string, messageId: string, u: Usage, model?: string): void {
    const id = this.bySession.get(sessionId)
    const l = id ? this.live.get(id) : undefined
    if (!l) return
    const prev = l.messages.get(messageId)
    const coordination = prev?.coordination ?? this.delivered.delete(sessionId)
    l.messages.set(messageId, { ...u, coordination })
    if (model) l.model = model
  }

  /** NSO's delivery started a model turn in this session (results, messages): coordination. */
  deliveryTurn(sessionId: string): void {
    if (this.bySession.has(sessionId)) this.delivered.add(sessionId)
  }

  toolStart(callId: string, sessionId: string, tool: string): void {
    if (this.bySession.has(sessionId)) this.toolStarts.set(callId, { sessionId, tool, at: this.deps.clock.now() })
  }

  toolEnd(callId: string, ok: boolean): void {
    const s = this.toolStarts.get(callId)
    if (!s) return
    this.toolStarts.delete(callId)
    const id = this.bySession.get(s.sessionId)
    const l = id ? this.live.get(id) : undefined
    l?.tools.push({ tool: s.tool, startedAt: s.at, endedAt: this.deps.clock.now(), ok })
  }

  /** After a restart: tasks already running get their live record back (times from the journal). */
  resume(): void {
    for (const t of this.ports.tasks.values()) {
      if (TERMINAL_TASK_STATUSES.has(t.status) || this.live.has(t.id)) continue
      this.live.set(t.id, { createdAt: t.createdAt, firstRunAt: t.status === "queued" ? undefined : t.createdAt, answerMs: 0, messages: new Map(), tools: [] })
      if (t.sessionId) this.bySession.set(t.sessionId, t.id)
    }
  }

  private emit(e: WorkflowEvent): void {
    for (const s of this.sinks) this.safely(() => s.workflow(e))
  }

  private safely(fn: () => void): void {
    try {
      fn()
    } catch (err) {
      this.deps.log.log("warn", "a telemetry sink failed", { error: String(err) })
    }
  }
}
