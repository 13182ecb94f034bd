import { tool } from "@opencode-ai/plugin"
import { TERMINAL_TASK_STATUSES } from "../protocol.js"
import type { Runtime } from "../runtime.js"
import { TaskError } from "../tasks/manager.js"
import { modelError } from "./errors.js"

const z = tool.schema

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
