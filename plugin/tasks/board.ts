import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type Envelope, type Question, type Task, type Workflow } from "../protocol.js"
import { runLine, taskLine } from "./format.js"
import { addUsage, NO_USAGE, usageLine } from "./usage.js"
import { rootSession, type TaskTable } from "./tree.js"

/**
 * The board a person reads: every root session's work (not only the session they are in — a
 * question open elsewhere still waits for them), what waits for them first.
 */
export function boardText(input: {
  tasks: TaskTable
  questions: Iterable<Question>
  pending: (sessionId: string) => Envelope[]
  /** The session the board is shown in. */
  here: string
  now: number
  /** Finished tasks to show per session (most recent first). */
  recentDone?: number
  /** Team runs (their member tasks are listed with the other tasks). */
  runs?: Iterable<Workflow>
}): string {
  const open = [...input.questions].filter((q) => q.status === "open")
  const bySession = new Map<string, Task[]>()
  for (const t of input.tasks.values()) {
    const root = rootSession(input.tasks, t)
    bySession.set(root, [...(bySession.get(root) ?? []), t])
  }
  const lines: string[] = []
  if (open.length) {
    lines.push(`Waiting for you — ${open.length} question(s):`)
    for (const q of open) lines.push(`- ${q.id} · ${q.from}${q.taskId ? ` · task ${q.taskId}` : ""}: ${q.text}${q.options.length ? ` [${q.options.join(" | ")}]` : ""}  → /answer ${q.id} <answer>`)
  }
  const sessions = [...bySession.keys()].sort((a, b) => (a === input.here ? -1 : b === input.here ? 1 : 0))
  for (const sid of sessions) {
    const all = bySession.get(sid)!.sort((a, b) => a.createdAt - b.createdAt)
    const live = all.filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    const done = all.filter((t) => TERMINAL_TASK_STATUSES.has(t.status)).slice(-(input.recentDone ?? 5))
    if (!live.length && !done.length) continue
    lines.push("", `${sid === input.here ? "This session" : `Session ${sid}`}: ${live.length} running or waiting, ${all.length - live.length} finished`)
    // Sub-team runs show through their members' lines; a run started here gets its own line.
    const runs = [...(input.runs ?? [])].filter((w) => !w.parentWorkflowId && w.parentSessionId === sid)
    for (const w of runs.filter((r) => !TERMINAL_PHASES.has(r.phase)).concat(runs.filter((r) => TERMINAL_PHASES.has(r.phase)).slice(-(input.recentDone ?? 5))))
      lines.push(`- ${runLine(w, all.filter((t) => t.workflow?.id === w.id), input.now)}`)
    for (const t of [...live, ...done]) lines.push(`- ${taskLine(t, input.now, open.find((q) => q.taskId === t.id))}`)
    const spent = all.reduce((u, t) => addUsage(u, t.usage ?? NO_USAGE), NO_USAGE)
    if (spent.turns) lines.push(`  background work spent: ${usageLine(spent)}`)
    const held = input.pending(sid)
    if (held.length) lines.push(`  ${held.length} message(s) held until you pause`)
  }
  if (!lines.length) return "No background tasks and no open questions."
  return lines.join("\n")
}
