import type { Question, Task } from "../protocol.js"

/** How tasks read in tool output: short, with the ids a model needs to act. */
export function taskLine(t: Task, now: number, question?: Question): string {
  const age = Math.round((now - t.createdAt) / 1000)
  const idle = Math.round((now - t.lastActivityAt) / 1000)
  const parts = [`${t.id} · ${t.agent} · ${t.status} · "${t.title}" · age ${age}s · last activity ${idle}s ago`]
  if (question) parts.push(`  pending question ${question.id}: ${question.text}`)
  if (t.status === "completed" && t.result) parts.push(`  result: ${t.result.slice(0, 200)}${t.result.length > 200 ? "…" : ""}`)
  if (t.error) parts.push(`  ${t.status === "failed" ? "error" : "note"}: ${t.error}`)
  return parts.join("\n")
}
