import { tool } from "@opencode-ai/plugin"
import { TERMINAL_TASK_STATUSES } from "../protocol.js"
import type { Runtime } from "../runtime.js"
import { TaskError } from "../tasks/manager.js"
import { modelError } from "./errors.js"
import { taskLine } from "./format.js"

const z = tool.schema

/** The task board of this session's tree, or one task. */
export function tasksTool(rt: Runtime) {
  return tool({
    description: "List your background tasks, or one by id.",
    args: { id: z.string().optional() },
    async execute(args, ctx) {
      try {
        const now = rt.deps.clock.now()
        const open = rt.questions.open()
        const list = args.id ? [rt.tasks.get(args.id)] : rt.tasks.tree(ctx.sessionID)
        if (args.id && !list[0]) throw new TaskError(`No task "${args.id}". Call tasks without an id to list them.`)
        if (!list.length) return "No background tasks in this session."
        const lines = list.map((t) => taskLine(t!, now, open.find((q) => q.taskId === t!.id)))
        const active = list.filter((t) => !TERMINAL_TASK_STATUSES.has(t!.status)).length
        return `${list.length} task(s), ${active} active:\n${lines.join("\n")}`
      } catch (err) {
        throw modelError("tasks", err)
      }
    },
  })
}
