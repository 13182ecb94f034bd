import { tool } from "@opencode-ai/plugin"
import { TERMINAL_TASK_STATUSES } from "../protocol.js"
import type { Runtime } from "../runtime.js"
import { TaskError } from "../tasks/manager.js"
import { modelError } from "./errors.js"

const z = tool.schema

/** Cancels a task and everything it started. */
export function taskCancelTool(rt: Runtime) {
  return tool({
    description: "Cancel a task and all it started.",
    args: { id: z.string() },
    async execute(args) {
      try {
        const t = rt.tasks.get(args.id)
        if (!t) throw new TaskError(`No task "${args.id}". Use the tasks tool to see task ids.`)
        if (TERMINAL_TASK_STATUSES.has(t.status)) return `Task ${t.id} already ended ${t.status}; nothing to cancel.`
        const gone = await rt.tasks.cancel(args.id, "cancelled by the Oracle", { tell: false })
        return `Cancelled ${gone.map((x) => `${x.id} (${x.agent})`).join(", ")}.`
      } catch (err) {
        throw modelError("task_cancel", err)
      }
    },
  })
}
