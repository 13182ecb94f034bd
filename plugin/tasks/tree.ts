import type { Task } from "../protocol.js"

/**
 * How tasks nest: a task's session may delegate tasks of its own. Pure functions over the task
 * table, shared by the task manager and the outbox (which decides where a task's messages go).
 */

export type TaskTable = ReadonlyMap<string, Task>

/** The session the user talks in, at the top of this task's tree. */
export function rootSession(tasks: TaskTable, task: Task): string {
  let t = task
  // Bounded: a corrupt table with a parent loop must not hang the process.
  for (let i = 0; i < 100 && t.parentTaskId; i++) {
    const p = tasks.get(t.parentTaskId)
    if (!p) break
    t = p
  }
  return t.parentSessionId
}

/** Tasks delegated from this session or from any task under it, oldest first. */
export function tree(tasks: TaskTable, sessionId: string): Task[] {
  const bySession = new Map<string, Task[]>()
  for (const t of tasks.values()) bySession.set(t.parentSessionId, [...(bySession.get(t.parentSessionId) ?? []), t])
  const out: Task[] = []
  const frontier = [sessionId]
  const seen = new Set<string>()
  while (frontier.length) {
    const sid = frontier.pop()!
    if (seen.has(sid)) continue
    seen.add(sid)
    for (const t of bySession.get(sid) ?? []) {
      out.push(t)
      if (t.sessionId) frontier.push(t.sessionId)
    }
  }
  return out.sort((a, b) => a.createdAt - b.createdAt)
}

/** Every task started (directly or not) by this task. */
export function descendants(tasks: TaskTable, id: string): Task[] {
  const children = new Map<string, Task[]>()
  for (const t of tasks.values()) if (t.parentTaskId) children.set(t.parentTaskId, [...(children.get(t.parentTaskId) ?? []), t])
  const out: Task[] = []
  const frontier = [id]
  while (frontier.length) for (const c of children.get(frontier.pop()!) ?? []) out.push(c), frontier.push(c.id)
  return out
}
