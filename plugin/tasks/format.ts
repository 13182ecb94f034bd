import { TERMINAL_TASK_STATUSES, type Question, type Task, type Workflow } from "../protocol.js"
import { compactTokens, totalTokens } from "./usage.js"

/** How tasks read in tool output: short, with the ids a model needs to act. */
export function taskLine(t: Task, now: number, question?: Question): string {
  const age = Math.round((now - t.createdAt) / 1000)
  const idle = Math.round((now - t.lastActivityAt) / 1000)
  // The member's role is already in its title.
  const team = t.workflow ? ` · run ${t.workflow.id}` : ""
  // Its own spend; the session total is shown once, under the list.
  const spent = t.usage ? ` · ${compactTokens(totalTokens(t.usage))} tok, ${t.usage.turns} turn${t.usage.turns === 1 ? "" : "s"}` : ""
  const retried = t.retries?.length ? ` · retried ${t.retries.length}×` : ""
  const parts = [`${t.id} · ${t.agent} · ${t.status} · "${t.title}"${team} · age ${age}s · last activity ${idle}s ago${spent}${retried}`]
  if (question) parts.push(`  pending question ${question.id}: ${question.text}`)
  if (t.status === "completed" && t.result) parts.push(`  result: ${t.result.slice(0, 200)}${t.result.length > 200 ? "…" : ""}`)
  if (t.error) parts.push(`  ${t.status === "failed" ? "error" : "note"}: ${t.error}`)
  return parts.join("\n")
}

/** A team run in one line: team, pattern, phase, members done, and its id. */
export function runLine(w: Workflow, members: readonly Task[], now: number): string {
  const done = members.filter((t) => TERMINAL_TASK_STATUSES.has(t.status)).length
  const failed = members.filter((t) => t.status === "failed" || t.status === "cancelled").length
  const age = Math.round(((w.endedAt ?? now) - w.createdAt) / 1000)
  return `${w.id} · team ${w.team} (${w.pattern.replace("_", "-")}) · ${w.phase} · "${w.title}" · ${done}/${members.length} task(s) ended${failed ? `, ${failed} without a result` : ""} · ${age}s`
}
