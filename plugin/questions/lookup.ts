import { TERMINAL_TASK_STATUSES, type Question, type Task } from "../protocol.js"

/**
 * Finds the question a person means by what they typed. People copy ids from rendered markdown,
 * which can lose the underscore (`q5a1…` for `q_5a1…`) or add backticks, and they shorten long
 * ids: an exact id, the id without its underscore, or an unambiguous prefix of either all work.
 */
export function findQuestion(all: Iterable<Question>, typed: string): { question: Question } | { error: string } {
  const list = [...all]
  const given = typed.trim().replace(/^`+|`+$/g, "").toLowerCase()
  const exact = list.find((q) => q.id === given)
  if (exact) return { question: exact }
  const loose = (id: string) => id.replace("_", "")
  const key = loose(given)
  const hits = key.length >= 3 ? list.filter((q) => loose(q.id).startsWith(key)) : []
  if (hits.length === 1) return { question: hits[0]! }
  const open = list.filter((q) => q.status === "open")
  const openList = open.length ? `Open questions: ${open.map((q) => `${q.id} (${q.from}: ${q.text.slice(0, 60)})`).join("; ")}.` : "There are no open questions."
  if (hits.length > 1) return { error: `"${typed}" matches ${hits.length} questions (${hits.map((q) => q.id).join(", ")}); give more of the id. ${openList}` }
  return { error: `No question "${typed}". ${openList}` }
}

/**
 * Why nobody can receive an answer to this question any more, if so: its task ended or is
 * unknown. A question from an agent NSO did not start has no task: its session may still take
 * a late answer.
 */
export function unanswerable(q: Question, tasks: ReadonlyMap<string, Task>): string | undefined {
  if (!q.taskId) return undefined
  const task = tasks.get(q.taskId)
  if (!task) return `its task ${q.taskId} is unknown (a lost or damaged journal record)`
  return TERMINAL_TASK_STATUSES.has(task.status) ? `its task ${task.id} ended ${task.status}` : undefined
}
