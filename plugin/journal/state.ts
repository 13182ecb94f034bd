import { z } from "zod"
import { BoardPost, Envelope, Question, Task, TERMINAL_PHASES, TERMINAL_TASK_STATUSES, Workflow, type JournalRecord } from "../protocol.js"
import type { Reducer } from "./journal.js"
import { Job, TERMINAL_JOB_STATUSES } from "../jobs/job.js"

/**
 * What replaying the journal rebuilds: tasks, questions and every agent message not yet
 * delivered. This is the single source of truth after a restart.
 */
export const NsoState = z.object({
  tasks: z.record(z.string(), Task),
  questions: z.record(z.string(), Question),
  /** Team runs, keyed by id. */
  workflows: z.record(z.string(), Workflow).default({}),
  /** Board posts per workflow, oldest first (the newest BOARD_MEMORY kept). */
  board: z.record(z.string(), z.array(BoardPost)).default({}),
  /** Buffered and not (yet) delivered, keyed by message id. */
  pending: z.record(z.string(), Envelope),
  /** Batches whose injection was started but not confirmed: delivered or not, we do not know. */
  inDoubt: z.record(z.string(), z.object({ sessionId: z.string(), ids: z.array(z.string()) })),
  /** Recently delivered ids, newest last, so a replayed or re-sent message is not delivered twice. */
  delivered: z.array(z.string()),
  /** Sessions whose init has run. */
  initialized: z.array(z.string()),
  /** Background shell jobs, keyed by id. */
  jobs: z.record(z.string(), Job).default({}),
})
export type NsoState = z.infer<typeof NsoState>

/** Posts kept per workflow board. */
const BOARD_MEMORY = 200

/** How many delivered ids to remember for dedupe. */
const DELIVERED_MEMORY = 10_000

/**
 * In-memory form: the same data in Maps and Sets (large plain-object dictionaries are slow to
 * grow). Kept separate so the snapshot stays plain JSON validated by `NsoState`.
 */
export interface LiveState {
  tasks: Map<string, Task>
  questions: Map<string, Question>
  workflows: Map<string, Workflow>
  board: Map<string, BoardPost[]>
  pending: Map<string, Envelope>
  inDoubt: Map<string, { sessionId: string; ids: string[] }>
  /** Envelopes of in-doubt batches, so they can be re-queued if the injection did not happen. */
  inDoubtEnvelopes: Map<string, Envelope>
  delivered: Set<string>
  initialized: Set<string>
  jobs: Map<string, Job>
}

export function emptyState(): LiveState {
  return {
    tasks: new Map(),
    questions: new Map(),
    workflows: new Map(),
    board: new Map(),
    pending: new Map(),
    inDoubt: new Map(),
    inDoubtEnvelopes: new Map(),
    delivered: new Set(),
    initialized: new Set(),
    jobs: new Map(),
  }
}

function remember(set: Set<string>, id: string): void {
  set.add(id)
  if (set.size > DELIVERED_MEMORY) {
    // Sets iterate in insertion order: the first is the oldest.
    const oldest = set.values().next().value
    if (oldest !== undefined) set.delete(oldest)
  }
}

export function applyRecord(state: LiveState, rec: JournalRecord): LiveState {
  const e = rec.e
  switch (e.type) {
    case "message.buffered":
      if (!state.delivered.has(e.envelope.id)) state.pending.set(e.envelope.id, e.envelope)
      break
    case "message.dropped":
      state.pending.delete(e.id)
      break
    case "delivery.started": {
      state.inDoubt.set(e.batchId, { sessionId: e.sessionId, ids: e.ids })
      for (const id of e.ids) {
        const env = state.pending.get(id)
        if (env) state.inDoubtEnvelopes.set(id, env)
        state.pending.delete(id)
      }
      break
    }
    case "delivery.confirmed": {
      const batch = state.inDoubt.get(e.batchId)
      if (!batch) break
      for (const id of batch.ids) {
        remember(state.delivered, id)
        state.inDoubtEnvelopes.delete(id)
      }
      state.inDoubt.delete(e.batchId)
      break
    }
    case "delivery.failed": {
      const batch = state.inDoubt.get(e.batchId)
      if (!batch) break
      for (const id of batch.ids) {
        const env = state.inDoubtEnvelopes.get(id)
        if (env && !state.delivered.has(id)) state.pending.set(id, env)
        state.inDoubtEnvelopes.delete(id)
      }
      state.inDoubt.delete(e.batchId)
      break
    }
    case "task.created":
      state.tasks.set(e.task.id, e.task)
      break
    case "task.updated": {
      const t = state.tasks.get(e.id)
      if (t) state.tasks.set(e.id, { ...t, ...stripUndefined(e.patch), updatedAt: rec.t })
      break
    }
    case "question.asked":
      state.questions.set(e.question.id, e.question)
      break
    case "question.timed_out": {
      const q = state.questions.get(e.id)
      if (q) q.timedOutAt = rec.t
      break
    }
    case "question.answered": {
      const q = state.questions.get(e.id)
      if (q && q.status === "open") {
        q.status = "answered"
        q.answer = e.answer
        q.answeredBy = e.by
        q.answeredAt = rec.t
      }
      break
    }
    case "question.closed": {
      const q = state.questions.get(e.id)
      if (q && q.status === "open") {
        q.status = "closed"
        q.closedReason = e.reason
      }
      break
    }
    case "session.initialized":
      state.initialized.add(e.sessionId)
      break
    case "board.posted": {
      const posts = state.board.get(e.post.workflow) ?? []
      if (!posts.some((p) => p.id === e.post.id)) {
        posts.push(e.post)
        if (posts.length > BOARD_MEMORY) posts.splice(0, posts.length - BOARD_MEMORY)
      }
      state.board.set(e.post.workflow, posts)
      break
    }
    case "workflow.created":
      state.workflows.set(e.workflow.id, e.workflow)
      break
    case "workflow.updated": {
      const w = state.workflows.get(e.id)
      if (w) state.workflows.set(e.id, { ...w, ...stripUndefined(e.patch), updatedAt: rec.t })
      break
    }
    case "workflow.handoff": {
      const w = state.workflows.get(e.id)
      if (w && !w.handoffs.some((h) => h.from === e.handoff.from && h.to === e.handoff.to)) state.workflows.set(e.id, { ...w, handoffs: [...w.handoffs, e.handoff] })
      break
    }
    case "job.started":
      state.jobs.set(e.job.id, e.job)
      break
    case "job.ended": {
      const j = state.jobs.get(e.id)
      // The first end wins: a cancel and the wrapper's own record may both report one.
      if (j && !TERMINAL_JOB_STATUSES.has(j.status)) state.jobs.set(e.id, { ...j, ...stripUndefined(e.end) })
      break
    }
    case "job.cancel_requested":
    case "workflow.requested":
    case "message.told":
    case "task.cancel_all_requested":
    case "task.cancel_requested":
      // A request; the server that owns the task acts on it and journals the outcome.
      break
    case "message.classified":
      // Written by older versions; message tags live in messages.jsonl now.
      break
  }
  return state
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v
  return out
}

const SnapshotState = NsoState.extend({
  inDoubtEnvelopes: z.record(z.string(), Envelope).default({}),
})

/** How long finished tasks and their answered questions are kept in the state (ms). */
export const RETAIN_FINISHED_MS = 30 * 24 * 3600_000

/** Forgets tasks that ended long ago, and their questions once answered. */
export function pruneFinished(state: LiveState, now: number, retainMs = RETAIN_FINISHED_MS): number {
  let n = 0
  for (const [id, t] of state.tasks) {
    if (!TERMINAL_TASK_STATUSES.has(t.status) || now - t.updatedAt < retainMs) continue
    state.tasks.delete(id)
    n++
    for (const [qid, q] of state.questions) if (q.taskId === id && q.status !== "open") state.questions.delete(qid)
  }
  for (const [id, w] of state.workflows) if (TERMINAL_PHASES.has(w.phase) && now - w.updatedAt >= retainMs) state.workflows.delete(id)
  for (const [id, j] of state.jobs) if (TERMINAL_JOB_STATUSES.has(j.status) && now - (j.endedAt ?? j.startedAt) >= retainMs) state.jobs.delete(id)
  return n
}

export const nsoReducer: Reducer<LiveState> = {
  prune: (s, now) => void pruneFinished(s, now),
  init: emptyState,
  apply: applyRecord,
  serialize: (s) => ({
    tasks: Object.fromEntries(s.tasks),
    questions: Object.fromEntries(s.questions),
    workflows: Object.fromEntries(s.workflows),
    board: Object.fromEntries(s.board),
    pending: Object.fromEntries(s.pending),
    inDoubt: Object.fromEntries(s.inDoubt),
    inDoubtEnvelopes: Object.fromEntries(s.inDoubtEnvelopes),
    delivered: [...s.delivered],
    initialized: [...s.initialized],
    jobs: Object.fromEntries(s.jobs),
  }),
  deserialize: (data) => {
    const s = SnapshotState.parse(data)
    return {
      tasks: new Map(Object.entries(s.tasks)),
      questions: new Map(Object.entries(s.questions)),
      workflows: new Map(Object.entries(s.workflows)),
      board: new Map(Object.entries(s.board)),
      pending: new Map(Object.entries(s.pending)),
      inDoubt: new Map(Object.entries(s.inDoubt)),
      inDoubtEnvelopes: new Map(Object.entries(s.inDoubtEnvelopes)),
      delivered: new Set(s.delivered),
      initialized: new Set(s.initialized),
      jobs: new Map(Object.entries(s.jobs)),
    }
  },
}
