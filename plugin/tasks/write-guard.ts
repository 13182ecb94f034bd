import { TERMINAL_TASK_STATUSES, type Task } from "../protocol.js"
import { inScope, projectPath } from "./scope.js"
import type { TaskTable } from "./tree.js"

/**
 * The write guard ("context contamination"): a task writes only inside its scope, and nobody
 * writes into a running task's scope. Returns the refusal, written for the model, or undefined.
 */
export function refuseWrite(input: {
  projectDir: string
  tasks: TaskTable
  /** The task whose session is writing, if any. */
  own: Task | undefined
  tool: string
  targets: readonly string[]
}): string | undefined {
  const { projectDir, tasks, own, tool } = input
  for (const target of input.targets) {
    const rel = projectPath(projectDir, target)
    if (own && own.scope.length && (rel === undefined || !inScope(own.scope, rel)))
      return `NSO refused this ${tool}: "${target}" is outside your task's write scope (${own.scope.join(", ")}). Write only inside that scope, or finish and say in your summary what else needs changing.`
    if (rel === undefined) continue
    for (const other of tasks.values()) {
      if (other.id === own?.id || !other.scope.length || other.status === "queued" || TERMINAL_TASK_STATUSES.has(other.status)) continue
      if (inScope(other.scope, rel))
        return `NSO refused this ${tool}: "${target}" belongs to running task ${other.id} (${other.agent}, scope ${other.scope.join(", ")}). Writing there would mix two tasks' work. Leave that file alone until the task ends.`
    }
  }
  return undefined
}
