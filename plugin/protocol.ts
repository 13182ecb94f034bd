import { z } from "zod"
import { Job, JobEnd, JobId } from "./jobs/job.js"

/**
 * Everything that crosses a boundary (a tool call, a file on disk, an injected message) is
 * described here once. Types are inferred from the schemas and share their names.
 */

// ---------------------------------------------------------------------------------------------
// Ids: prefixed so that a stray id in a log or a model's tool call says what it names.

const prefixed = (prefix: string, what: string) =>
  z.string().regex(new RegExp(`^${prefix}_[0-9A-Za-z_-]{4,64}$`), {
    message: `expected a ${what} id like "${prefix}_abc123"`,
  })

export const MessageId = prefixed("msg", "message")
export type MessageId = z.infer<typeof MessageId>
export const TaskId = prefixed("tsk", "task")
export type TaskId = z.infer<typeof TaskId>
export const QuestionId = prefixed("q", "question")
export type QuestionId = z.infer<typeof QuestionId>
export const WorkflowId = prefixed("wf", "team run")
export type WorkflowId = z.infer<typeof WorkflowId>

/** The prefixes in use, so id generation and parsing agree. */
export const IdPrefix = { message: "msg", task: "tsk", question: "q", batch: "dlv", workflow: "wf" } as const

// ---------------------------------------------------------------------------------------------
// The message envelope

export const Source = z.enum(["user", "agent", "system"])
export type Source = z.infer<typeof Source>

export const Kind = z.enum([
  "question",
  "answer",
  "completion",
  "failure",
  "status",
  "finding",
  "assignment",
  "escalation",
  "handoff",
  /** Agent to agent: asks for something; the recipient answers with a `reply`. */
  "request",
  "reply",
])
export type Kind = z.infer<typeof Kind>

export const Priority = z.enum(["urgent", "high", "medium", "low"])
export type Priority = z.infer<typeof Priority>

/** Highest first; the index is the rank used by the buffer. */
export const PRIORITY_ORDER: readonly Priority[] = ["urgent", "high", "medium", "low"]

/** Kinds the buffer may never drop: losing one loses work or leaves an agent waiting forever. */
export const UNDROPPABLE_KINDS: ReadonlySet<Kind> = new Set<Kind>(["question", "completion", "failure"])

export const Envelope = z.object({
  id: MessageId,
  /** Milliseconds since the epoch when NSO accepted the message. */
  time: z.number().int().nonnegative(),
  /** Decided by NSO from where the message came from, never from what its text claims. */
  source: Source,
  /** Agent name, `user` or `system`. */
  from: z.string().min(1),
  /** Agent name, `oracle`, `user`, or `*` for everyone. */
  to: z.string().min(1),
  kind: Kind,
  priority: Priority,
  taskId: TaskId.optional(),
  questionId: QuestionId.optional(),
  replyTo: MessageId.optional(),
  /** The team run the message is about. */
  workflowId: WorkflowId.optional(),
  /** Seen only by sender and recipient (and the audit log): kept off the board and the Oracle's views. */
  private: z.boolean().optional(),
  /** How many agents this message has passed through; the loop guard stops it past a bound. */
  hops: z.number().int().nonnegative().default(0),
  /** Milliseconds since the epoch after which an undelivered message is dropped. */
  expiresAt: z.number().int().nonnegative().optional(),
  /** The session whose Oracle should receive it (the delegating root session). */
  sessionId: z.string().min(1).optional(),
  text: z.string(),
})
export type Envelope = z.infer<typeof Envelope>

/**
 * What NSO puts in `metadata.nso` of every text part it injects. The `chat.message` hook reads
 * it back to tag the message; the model only ever sees the visible header in the text.
 */
export const InjectionMeta = z.object({
  /** `user`: the person wrote it directly to a background agent (/tell, nso tell). */
  source: z.enum(["user", "agent", "system"]),
  from: z.string().min(1),
  kind: Kind.optional(),
  ids: z.array(z.string()).default([]),
})
export type InjectionMeta = z.infer<typeof InjectionMeta>

// ---------------------------------------------------------------------------------------------
// Tasks and questions

export const TaskStatus = z.enum([
  "queued",
  "running",
  "waiting_for_answer",
  "completed",
  "failed",
  "cancelled",
  "stalled",
])
export type TaskStatus = z.infer<typeof TaskStatus>

export const TERMINAL_TASK_STATUSES: ReadonlySet<TaskStatus> = new Set<TaskStatus>([
  "completed",
  "failed",
  "cancelled",
])

/** A task's place in a team run. */
export const TaskWorkflow = z.object({
  id: WorkflowId,
  /** The task's step in the run's plan ("coordinator", "member:2", "synthesis"): stable across restarts. */
  step: z.string().min(1),
  /** The member's role in the team, as the team file names it. */
  role: z.string().optional(),
  /**
   * `workflow`: the run reports this task's end (the delegating session hears one team result);
   * `parent`: reported to its delegating session as any task (a member's result to its coordinator).
   */
  report: z.enum(["parent", "workflow"]),
  /** Most tasks of this run that may work at once (the team's `max_parallel`). */
  parallel: z.number().int().positive().optional(),
})
export type TaskWorkflow = z.infer<typeof TaskWorkflow>

/**
 * Tokens and money a task's own model turns spent, read from OpenCode's assistant messages as
 * they complete (not its sub-tasks': those are rolled up when shown, tasks/usage.ts).
 */
export const TaskUsage = z.object({
  input: z.number().nonnegative(),
  output: z.number().nonnegative(),
  reasoning: z.number().nonnegative(),
  cacheRead: z.number().nonnegative(),
  cacheWrite: z.number().nonnegative(),
  /** In the provider's currency (OpenCode's `cost`), usually USD. */
  cost: z.number().nonnegative(),
  /** Assistant messages (model calls). */
  turns: z.number().int().nonnegative(),
})
export type TaskUsage = z.infer<typeof TaskUsage>

/** One automatic retry after a transient failure (provider error, rate limit, network). */
export const TaskRetry = z.object({
  at: z.number().int(),
  /** The failure that was retried. */
  reason: z.string(),
  /** How long NSO waited before sending the agent back to work (ms). */
  delayMs: z.number().int().nonnegative(),
})
export type TaskRetry = z.infer<typeof TaskRetry>

export const Task = z.object({
  id: TaskId,
  agent: z.string().min(1),
  title: z.string(),
  prompt: z.string(),
  priority: z.enum(["low", "medium", "high"]).default("medium"),
  status: TaskStatus,
  /** The session that delegated the task; results go back there. */
  parentSessionId: z.string().min(1),
  /** The child session doing the work, once created. */
  sessionId: z.string().min(1).optional(),
  parentTaskId: TaskId.optional(),
  depth: z.number().int().nonnegative().default(0),
  /** Path globs the task may write to; empty means unrestricted. */
  scope: z.array(z.string()).default([]),
  dependsOn: z.array(TaskId).default([]),
  /** Start once every dependency ended, whatever way; failed ones are marked in the handoff (team runs). */
  acceptPartial: z.boolean().optional(),
  /** Wall-clock limit for this task, in ms (over the `tasks.maxRuntimeMs` option). */
  timeoutMs: z.number().int().positive().optional(),
  /** Most model turns (assistant messages) this task may take. */
  maxTurns: z.number().int().positive().optional(),
  /** Most tokens (all kinds, see tasks/usage.ts `totalTokens`) this task's own turns may spend. */
  maxTokens: z.number().int().positive().optional(),
  workflow: TaskWorkflow.optional(),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  lastActivityAt: z.number().int(),
  result: z.string().optional(),
  error: z.string().optional(),
  usage: TaskUsage.optional(),
  /** Automatic retries so far, oldest first. */
  retries: z.array(TaskRetry).optional(),
})
export type Task = z.infer<typeof Task>

/** `closed`: nobody can receive an answer any more (its task ended, or it was found orphaned). */
export const QuestionStatus = z.enum(["open", "answered", "closed"])
export type QuestionStatus = z.infer<typeof QuestionStatus>

export const Question = z.object({
  id: QuestionId,
  taskId: TaskId.optional(),
  /** The asking agent. */
  from: z.string().min(1),
  /** The asking (child) session, where a late answer is forwarded. */
  sessionId: z.string().min(1),
  text: z.string().min(1),
  urgency: z.enum(["normal", "urgent"]).default("normal"),
  options: z.array(z.string()).default([]),
  askedAt: z.number().int(),
  /** Set when the asking call stopped waiting; the question stays open for a late answer. */
  timedOutAt: z.number().int().optional(),
  status: QuestionStatus,
  answer: z.string().optional(),
  answeredBy: z.string().optional(),
  answeredAt: z.number().int().optional(),
  /** Why it was closed unanswered. */
  closedReason: z.string().optional(),
})
export type Question = z.infer<typeof Question>

// ---------------------------------------------------------------------------------------------
// Team runs (workflows). A run is a record over ordinary tasks: its members are tasks carrying
// `workflow.id`; the run only adds a phase, handoffs and the one result its caller hears.

export const TeamPattern = z.enum(["coordinator_worker", "parallel", "sequential", "hierarchical", "peer_to_peer"])
export type TeamPattern = z.infer<typeof TeamPattern>

export const WorkflowPhase = z.enum(["delegation", "parallel_execution", "synthesis", "completed", "failed", "partial", "cancelled"])
export type WorkflowPhase = z.infer<typeof WorkflowPhase>

export const TERMINAL_PHASES: ReadonlySet<WorkflowPhase> = new Set<WorkflowPhase>(["completed", "failed", "partial", "cancelled"])

export const Handoff = z.object({
  from: TaskId,
  to: TaskId,
  fromAgent: z.string(),
  toAgent: z.string(),
  /** Files the earlier member listed (its "Artifacts:" section). */
  artifacts: z.array(z.string()).default([]),
  at: z.number().int(),
})
export type Handoff = z.infer<typeof Handoff>

export const Workflow = z.object({
  id: WorkflowId,
  team: z.string().min(1),
  pattern: TeamPattern,
  goal: z.string(),
  title: z.string(),
  /** The session that started the run; its one result goes there. */
  parentSessionId: z.string().min(1),
  /** Set for a sub-team run started by a coordinator of a hierarchical team. */
  parentWorkflowId: WorkflowId.optional(),
  /** 1 for a run started by the Oracle or the user; +1 per sub-team level. */
  depth: z.number().int().positive(),
  phase: WorkflowPhase,
  /** Who started it: an agent name, or `user` (the /team command, the CLI). */
  startedBy: z.string().min(1),
  handoffs: z.array(Handoff).default([]),
  createdAt: z.number().int(),
  updatedAt: z.number().int(),
  endedAt: z.number().int().optional(),
  result: z.string().optional(),
})
export type Workflow = z.infer<typeof Workflow>

// ---------------------------------------------------------------------------------------------
// The shared board: what agents of one workflow post for each other (findings, variables,
// decisions) and broadcasts, shown in each member's prompt as a digest instead of a model turn each.

export const BoardPost = z.object({
  id: MessageId,
  time: z.number().int(),
  /** The workflow it belongs to: a team run id, or the Oracle session whose tasks share it. */
  workflow: z.string().min(1),
  from: z.string().min(1),
  fromTaskId: TaskId.optional(),
  kind: z.enum(["finding", "variable", "decision", "broadcast"]),
  /** For a variable: its name (a later post with the same key replaces it in the digest). */
  key: z.string().optional(),
  text: z.string(),
})
export type BoardPost = z.infer<typeof BoardPost>

// ---------------------------------------------------------------------------------------------
// Journal events: the only things ever written to the journal. Replay folds them into state.

export const JOURNAL_VERSION = 1

const event = <T extends string, S extends z.ZodRawShape>(type: T, shape: S) =>
  z.object({ type: z.literal(type), ...shape })

export const JournalEvent = z.discriminatedUnion("type", [
  event("message.buffered", { envelope: Envelope }),
  event("message.dropped", { id: MessageId, reason: z.enum(["expired", "overflow", "obsolete"]) }),
  /**
   * Written before the injection is attempted (write-ahead); `delivery.confirmed` or
   * `delivery.failed` follows. A batch with neither after a crash is settled on restart by looking
   * for its ids in the session (buffer/delivery.ts).
   */
  event("delivery.started", { batchId: z.string(), sessionId: z.string(), ids: z.array(MessageId) }),
  event("delivery.confirmed", { batchId: z.string() }),
  /** The injection failed or was found not to have happened: the items are pending again. */
  event("delivery.failed", { batchId: z.string(), reason: z.string() }),
  event("task.created", { task: Task }),
  event("task.updated", {
    id: TaskId,
    patch: Task.pick({
      status: true,
      sessionId: true,
      lastActivityAt: true,
      result: true,
      error: true,
      usage: true,
      retries: true,
    }).partial(),
  }),
  event("question.asked", { question: Question }),
  event("question.timed_out", { id: QuestionId }),
  event("question.answered", { id: QuestionId, answer: z.string(), by: z.string() }),
  event("question.closed", { id: QuestionId, reason: z.string() }),
  /** Written by another process (the CLI); the server acts on it. */
  /** `id`: a task, or a team run (all its tasks). */
  event("task.cancel_requested", { id: z.string().regex(/^(tsk|wf)_[0-9A-Za-z_-]{4,64}$/, { message: 'expected a task or team run id like "tsk_abc123" or "wf_abc123"' }), by: z.string() }),
  /** Written by another process (the CLI, `nso cancel --all`): every running task and team run, of one session's tree or of all. */
  event("task.cancel_all_requested", { sessionId: z.string().optional(), by: z.string() }),
  /** Legacy: read from older journals and ignored. Tags are written to messages.jsonl now. */
  event("message.classified", {
    sessionId: z.string(),
    messageId: z.string().optional(),
    source: Source,
    from: z.string(),
    agent: z.string().optional(),
  }),
  event("session.initialized", { sessionId: z.string(), root: z.boolean() }),
  event("board.posted", { post: BoardPost }),
  event("workflow.created", { workflow: Workflow }),
  event("workflow.updated", { id: WorkflowId, patch: Workflow.pick({ phase: true, endedAt: true, result: true }).partial() }),
  event("workflow.handoff", { id: WorkflowId, handoff: Handoff }),
  /** Written by another process (the CLI): the person's message for a running task or team run (nso tell). */
  event("message.told", { to: z.string().min(1), text: z.string().min(1), by: z.string() }),
  /** Written by another process (the CLI): the server starts the run. */
  event("workflow.requested", { team: z.string(), goal: z.string(), sessionId: z.string().optional(), by: z.string() }),
  /** A background shell job was started (plugin/jobs/). */
  event("job.started", { job: Job }),
  event("job.ended", { id: JobId, end: JobEnd }),
  /** Written by another process (the CLI): the server cancels the job. */
  event("job.cancel_requested", { id: JobId, by: z.string() }),
])
export type JournalEvent = z.infer<typeof JournalEvent>

/** One line of the journal file. `w` + `s` identify a record across processes for dedupe. */
export const JournalRecord = z.object({
  v: z.literal(JOURNAL_VERSION),
  /** Writer id: one per journal handle (process). */
  w: z.string().min(1),
  /** Sequence number, strictly increasing per writer. */
  s: z.number().int().nonnegative(),
  /** Milliseconds since the epoch. */
  t: z.number().int(),
  e: JournalEvent,
})
export type JournalRecord = z.infer<typeof JournalRecord>

// ---------------------------------------------------------------------------------------------
// Routing rules (an option)

/** A user-message rule: any keyword (whole word, any case) or the regex suggests `agent`. */
export const IntentRule = z
  .object({
    name: z.string().min(1),
    agent: z.string().min(1),
    keywords: z.array(z.string().min(1)).default([]),
    /** A JavaScript regular expression, matched case-insensitively. */
    pattern: z.string().optional(),
  })
  .refine((r) => r.keywords.length > 0 || r.pattern !== undefined, {
    message: "a rule needs at least one keyword or a pattern",
  })
export type IntentRule = z.infer<typeof IntentRule>

// ---------------------------------------------------------------------------------------------
// Errors at boundaries

/**
 * Thrown when input at a boundary does not match its schema. The message names each field, what
 * was expected and what arrived, so a person (or a model) can fix the input in one go.
 */
export class ValidationError extends TypeError {
  override name = "ValidationError"
  constructor(
    readonly what: string,
    readonly issues: readonly string[],
  ) {
    super(`Invalid ${what}: ${issues.join("; ")}`)
  }
}

export function describeIssues(error: z.ZodError, input: unknown): string[] {
  return error.issues.map((issue) => {
    const path = issue.path.length ? issue.path.map(String).join(".") : "(root)"
    const got = valueAt(input, issue.path)
    const received = got === undefined ? "nothing" : preview(got)
    return `${path}: ${issue.message} (received ${received})`
  })
}

/** Parse or throw a `ValidationError` naming every bad field. */
export function parse<S extends z.ZodType>(schema: S, input: unknown, what: string): z.infer<S> {
  const r = schema.safeParse(input)
  if (r.success) return r.data
  throw new ValidationError(what, describeIssues(r.error, input))
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let cur: unknown = input
  for (const key of path) {
    if (cur === null || typeof cur !== "object") return undefined
    cur = (cur as Record<PropertyKey, unknown>)[key]
  }
  return cur
}

function preview(v: unknown): string {
  const s = typeof v === "string" ? JSON.stringify(v) : (JSON.stringify(v) ?? String(v))
  return s.length > 60 ? `${s.slice(0, 57)}...` : s
}
