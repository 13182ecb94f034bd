import type { AssistantOutcome } from "../deps.js"
import type { Task } from "../protocol.js"

/**
 * What a restart does with each unfinished task, decided from the journal's view of the task
 * and what OpenCode says its session last did. Pure: the task manager carries it out.
 */
export type Recovery =
  /** Never started: queue it again. */
  | { action: "requeue" }
  /** Started, but its session was never created: nothing to resume. */
  | { action: "fail"; error: string }
  /** Its agent finished while NSO was down: complete it with that reply. */
  | { action: "complete"; result: string }
  /** It was waiting for the user: the question stays open; its answer goes to the session. */
  | { action: "await_answer" }
  /** Cut off mid-work: the close policy decides (ask, persist, kill). */
  | { action: "interrupted" }

export function recoveryFor(task: Task, last: AssistantOutcome | undefined): Recovery {
  if (task.status === "queued") return { action: "requeue" }
  if (!task.sessionId) return { action: "fail", error: "interrupted by a restart before its session existed" }
  // A reply that finished without error after the task started is the task's result. One that
  // ended in an abort is not: quitting OpenCode aborts the reply in flight, and that must not
  // read as the user cancelling the work.
  if (last?.completed && last.createdAt >= task.createdAt && !last.error)
    return { action: "complete", result: last.text || "(the agent finished without a summary)" }
  if (task.status === "waiting_for_answer") return { action: "await_answer" }
  return { action: "interrupted" }
}
