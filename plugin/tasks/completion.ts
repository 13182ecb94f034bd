import type { AssistantOutcome } from "../deps.js"
import type { TaskStatus } from "../protocol.js"

/**
 * How NSO learns that a task's agent finished: the latest assistant message of each watched
 * session, assembled from message events as they stream by, so confirming an idle event needs no
 * request to OpenCode. Only after a restart (no events seen) is OpenCode asked.
 */
export class ReplyTracker {
  private replies = new Map<string, { messageId: string; outcome: AssistantOutcome; parts: Map<string, string> }>()
  /** The newest non-empty text each session's agent wrote: a stopped task's partial result. */
  private lastSaid = new Map<string, string>()

  /** An assistant message was created or changed. Older messages never replace a newer one. */
  observeAssistant(sessionId: string, messageId: string, outcome: Omit<AssistantOutcome, "text">): void {
    let r = this.replies.get(sessionId)
    if (!r || r.messageId !== messageId) {
      if (r && outcome.createdAt < r.outcome.createdAt) return
      r = { messageId, outcome: { ...outcome, text: "" }, parts: new Map() }
      this.replies.set(sessionId, r)
    }
    r.outcome = { ...outcome, text: r.outcome.text }
  }

  /** A (non-synthetic) text part of that message changed. */
  observeText(sessionId: string, messageId: string, partId: string, text: string): void {
    const r = this.replies.get(sessionId)
    if (!r || r.messageId !== messageId) return
    r.parts.set(partId, text)
    r.outcome.text = [...r.parts.values()].join("\n").trim()
    if (r.outcome.text) this.lastSaid.set(sessionId, r.outcome.text)
  }

  /** What the agent last wrote, finished or not. */
  said(sessionId: string): string | undefined {
    return this.lastSaid.get(sessionId)
  }

  /** The latest reply, if events showed it finished. */
  finished(sessionId: string): AssistantOutcome | undefined {
    const r = this.replies.get(sessionId)
    return r?.outcome.completed ? r.outcome : undefined
  }

  forget(sessionId: string): void {
    this.replies.delete(sessionId)
    this.lastSaid.delete(sessionId)
  }

  /** Drops the session's latest reply (a retry begins a new one), keeping what the agent said. */
  restart(sessionId: string): void {
    this.replies.delete(sessionId)
  }
}

/** What a finished reply means for its task. */
export function verdict(last: AssistantOutcome): { status: Extract<TaskStatus, "completed" | "failed" | "cancelled">; result?: string; error?: string } {
  if (last.error?.aborted) return { status: "cancelled", error: "aborted" }
  if (last.error) return { status: "failed", error: `${last.error.name}: ${last.error.message}` }
  return { status: "completed", result: last.text || "(the agent finished without a summary)" }
}
