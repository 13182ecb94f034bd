import { tool } from "@opencode-ai/plugin"
import { TERMINAL_TASK_STATUSES } from "../protocol.js"
import type { Runtime } from "../runtime.js"
import { modelError } from "./errors.js"
import { taskLine } from "./format.js"
import { TaskError } from "../tasks/manager.js"

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

/** The full result of a task; waits a bounded time if it is still running. */
export function taskResultTool(rt: Runtime) {
  return tool({
    description: "A task's full result; if running, waits up to wait_ms (max 120000).",
    args: {
      id: z.string(),
      wait_ms: z.number().int().min(0).max(120_000).optional(),
    },
    async execute(args, ctx) {
      try {
        let t = rt.tasks.get(args.id)
        if (!t) throw new TaskError(`No task "${args.id}". Use the tasks tool to see task ids.`)
        if (!TERMINAL_TASK_STATUSES.has(t.status) && args.wait_ms) {
          let timer: ReturnType<typeof rt.deps.timers.setTimeout> | undefined
          const timeout = new Promise<undefined>((r) => (timer = rt.deps.timers.setTimeout(() => r(undefined), args.wait_ms!)))
          const aborted = new Promise<undefined>((r) => ctx.abort.addEventListener("abort", () => r(undefined), { once: true }))
          t = (await Promise.race([rt.tasks.ended(args.id), timeout, aborted])) ?? rt.tasks.get(args.id)!
          if (timer) rt.deps.timers.clearTimeout(timer)
        }
        if (t.status === "completed") return `Task ${t.id} (${t.agent}: "${t.title}") completed.\n\n${t.result ?? ""}`
        if (TERMINAL_TASK_STATUSES.has(t.status)) return `Task ${t.id} ended ${t.status}: ${t.error ?? "no details"}`
        const q = rt.questions.open().find((x) => x.taskId === t!.id)
        return `Task ${t.id} is ${t.status}${q ? ` (waiting for an answer to question ${q.id}: ${q.text})` : ""}. No result yet; it will arrive as an [NSO] message.`
      } catch (err) {
        throw modelError("task_result", err)
      }
    },
  })
}

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
        const gone = await rt.tasks.cancel(args.id, "cancelled by the Oracle")
        return `Cancelled ${gone.map((x) => `${x.id} (${x.agent})`).join(", ")}.`
      } catch (err) {
        throw modelError("task_cancel", err)
      }
    },
  })
}
