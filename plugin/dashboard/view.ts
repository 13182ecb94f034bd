import type { LiveState } from "../journal/state.js"
import type { BoardPost, Envelope, JournalEvent, Question, Task, Workflow } from "../protocol.js"
import { rootSession } from "../tasks/tree.js"
import { redactText } from "../telemetry/tool-log.js"

/**
 * What the page shows, as items keyed by kind and id: built from NSO's state, with secrets
 * redacted as in the tool log and long texts bounded. The page keeps one map per kind and
 * replaces an item whole when a newer one arrives.
 */

/** Longest text of one field sent to the page (a result, a prompt); the rest is cut with a note. */
export const MAX_FIELD_CHARS = 4_000

export type TaskView = Pick<
  Task,
  "id" | "agent" | "title" | "status" | "priority" | "parentSessionId" | "sessionId" | "parentTaskId" | "depth" | "createdAt" | "updatedAt" | "lastActivityAt" | "result" | "error" | "prompt"
> & {
  /** The Oracle session at the top of its tree. */
  root: string
  workflowId?: string
  role?: string
  /** Input + output + reasoning tokens so far, when known. */
  tokens?: number
}

export type QuestionView = Question
export type RunView = Workflow
export type PostView = BoardPost

/** One message between agents, the Oracle and the user (the buffer's envelopes, the messaging audit). */
export type MessageView = Pick<Envelope, "id" | "time" | "from" | "to" | "kind" | "text"> & {
  source?: string
  priority?: string
  taskId?: string
  workflowId?: string
  /** What became of it (the messaging audit's outcome), when known. */
  outcome?: string
}

export type Item =
  | { kind: "task"; id: string; data: TaskView }
  | { kind: "question"; id: string; data: QuestionView }
  | { kind: "run"; id: string; data: RunView }
  | { kind: "post"; id: string; data: PostView }
  | { kind: "message"; id: string; data: MessageView }

export const itemKey = (i: Pick<Item, "kind" | "id">): string => `${i.kind}:${i.id}`

/** Every string in `v` redacted and bounded; the shape is kept. */
export function clean<T>(v: T, depth = 0): T {
  if (typeof v === "string") {
    const r = redactText(v)
    return (r.length > MAX_FIELD_CHARS ? `${r.slice(0, MAX_FIELD_CHARS)}… (+${r.length - MAX_FIELD_CHARS} chars; nso tasks shows all)` : r) as T
  }
  if (v === null || typeof v !== "object" || depth > 6) return v
  if (Array.isArray(v)) return v.map((x) => clean(x, depth + 1)) as T
  const out: Record<string, unknown> = {}
  for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = clean(x, depth + 1)
  return out as T
}

export function taskItem(state: Pick<LiveState, "tasks">, t: Task, live?: number): Item {
  // The live count (messages still streaming) when the server has one; else what the journal holds.
  const tokens = live ?? (t.usage ? t.usage.input + t.usage.output + t.usage.reasoning : undefined)
  const data: TaskView = {
    id: t.id,
    agent: t.agent,
    title: t.title,
    prompt: t.prompt,
    status: t.status,
    priority: t.priority,
    parentSessionId: t.parentSessionId,
    ...(t.sessionId ? { sessionId: t.sessionId } : {}),
    ...(t.parentTaskId ? { parentTaskId: t.parentTaskId } : {}),
    depth: t.depth,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    lastActivityAt: t.lastActivityAt,
    ...(t.result !== undefined ? { result: t.result } : {}),
    ...(t.error !== undefined ? { error: t.error } : {}),
    root: rootSession(state.tasks, t),
    ...(t.workflow ? { workflowId: t.workflow.id, ...(t.workflow.role ? { role: t.workflow.role } : {}) } : {}),
    ...(tokens !== undefined ? { tokens } : {}),
  }
  return { kind: "task", id: t.id, data: clean(data) }
}

export const questionItem = (q: Question): Item => ({ kind: "question", id: q.id, data: clean(q) })
export const runItem = (w: Workflow): Item => ({ kind: "run", id: w.id, data: clean(w) })
export const postItem = (p: BoardPost): Item => ({ kind: "post", id: p.id, data: clean(p) })

export function envelopeItem(e: Envelope): Item {
  const data: MessageView = {
    id: e.id,
    time: e.time,
    from: e.from,
    to: e.to,
    kind: e.kind,
    text: e.text,
    source: e.source,
    priority: e.priority,
    ...(e.taskId ? { taskId: e.taskId } : {}),
    ...(e.workflowId ? { workflowId: e.workflowId } : {}),
  }
  return { kind: "message", id: e.id, data: clean(data) }
}

/** A line of the messaging audit (messages.jsonl, `type: "message"`), or undefined for other lines. */
export function auditItem(r: Record<string, unknown>): Item | undefined {
  if (r.type !== "message" || typeof r.id !== "string" || typeof r.from !== "string" || typeof r.to !== "string") return undefined
  const str = (k: string) => (typeof r[k] === "string" ? (r[k] as string) : undefined)
  const data: MessageView = {
    id: r.id,
    time: typeof r.time === "number" ? r.time : 0,
    from: r.from,
    to: r.to,
    kind: (str("kind") ?? "status") as MessageView["kind"],
    text: str("text") ?? "",
    ...(str("source") ? { source: str("source") } : {}),
    ...(str("fromTask") ? { taskId: str("fromTask") } : {}),
    ...(str("workflow")?.startsWith("wf_") ? { workflowId: str("workflow") } : {}),
    ...(str("outcome") ? { outcome: str("outcome") } : {}),
  }
  return { kind: "message", id: r.id, data: clean(data) }
}

/** Every item the state holds (messages come from the buffer's pending envelopes; the audit adds the rest). */
export function stateItems(state: LiveState, tokens: (taskId: string) => number | undefined = () => undefined): Item[] {
  const out: Item[] = []
  for (const t of state.tasks.values()) out.push(taskItem(state, t, tokens(t.id)))
  for (const q of state.questions.values()) out.push(questionItem(q))
  for (const w of state.workflows.values()) out.push(runItem(w))
  for (const posts of state.board.values()) for (const p of posts) out.push(postItem(p))
  for (const e of state.pending.values()) out.push(envelopeItem(e))
  return out
}

/** The items an event changed, read from the state it was just applied to. */
export function itemsFor(state: LiveState, e: JournalEvent, tokens: (taskId: string) => number | undefined = () => undefined): Item[] {
  const task = (id: string) => {
    const t = state.tasks.get(id)
    return t ? [taskItem(state, t, tokens(id))] : []
  }
  const question = (id: string) => {
    const q = state.questions.get(id)
    return q ? [questionItem(q)] : []
  }
  const run = (id: string) => {
    const w = state.workflows.get(id)
    return w ? [runItem(w)] : []
  }
  switch (e.type) {
    case "task.created":
      return task(e.task.id)
    case "task.updated":
      return task(e.id)
    case "question.asked":
      return question(e.question.id)
    case "question.answered":
    case "question.closed":
    case "question.timed_out":
      return question(e.id)
    case "workflow.created":
      return run(e.workflow.id)
    case "workflow.updated":
    case "workflow.handoff":
      return run(e.id)
    case "board.posted":
      return [postItem(e.post)]
    case "message.buffered":
      return [envelopeItem(e.envelope)]
    default:
      return []
  }
}
