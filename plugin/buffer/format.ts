import type { Envelope } from "../protocol.js"

/** The visible header of an injected message; the model sees only text, so the ids live here. */
export function header(e: Pick<Envelope, "from" | "kind" | "taskId" | "questionId" | "priority" | "workflowId" | "source" | "to" | "id">): string {
  // A message to an agent (from another agent, the Oracle or the person) says who spoke, and
  // carries its id so the recipient can answer it with reply_to.
  const direct = e.source === "user" || (e.to !== "oracle" && e.to !== "user" && e.to !== "coordinator")
  const parts = direct ? ["NSO", e.source === "user" ? "source: user" : `source: ${e.source} · from: ${e.from}`, `msg ${e.id}`] : ["NSO", e.from]
  if (e.workflowId) parts.push(`run ${e.workflowId}`)
  if (e.taskId) parts.push(`task ${e.taskId}`)
  if (e.questionId) parts.push(`question ${e.questionId}`)
  // "question q_…" already says what it is.
  if (!(e.kind === "question" && e.questionId)) parts.push(e.kind)
  if (e.priority === "urgent") parts.push("URGENT")
  return `[${parts.join(" · ")}]`
}

export interface FormatOptions {
  /** Longest text kept inline per message, in characters; longer is cut with a pointer. */
  maxInlineChars: number
}

/** One message's text, cut to the inline bound with a pointer to the full result. */
export function body(e: Envelope, opts: FormatOptions): string {
  if (e.text.length <= opts.maxInlineChars) return e.text
  const more = e.taskId ? ` Call tasks with id "${e.taskId}" for the full text.` : ""
  return `${e.text.slice(0, opts.maxInlineChars)}\n… [cut: ${e.text.length - opts.maxInlineChars} more characters.${more}]`
}

/** Everything in one injected message, highest priority first (the order given). */
export function formatBatch(batch: readonly Envelope[], opts: FormatOptions): string {
  return batch.map((e) => `${header(e)}\n${body(e, opts)}`).join("\n\n")
}
