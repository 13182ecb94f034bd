import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"
import { modelError } from "./errors.js"

const z = tool.schema

/** Hands work to a background agent; returns the task id at once. */
export function delegateTool(rt: Runtime) {
  return tool({
    description: `Start a background task; returns its id at once, the result comes later as an [NSO] message. Agents: ${[...rt.agents().keys()].join(", ")}`,
    args: {
      agent: z.string(),
      prompt: z.string().describe("Self-contained instructions"),
      title: z.string().optional(),
      priority: z.enum(["low", "medium", "high"]).optional(),
      scope: z.array(z.string()).optional().describe("Writable path globs"),
      depends_on: z.array(z.string()).optional().describe("Task ids whose results it needs"),
    },
    async execute(args, ctx) {
      try {
        const t = await rt.tasks.delegate({
          parentSessionId: ctx.sessionID,
          agent: args.agent,
          prompt: args.prompt,
          title: args.title,
          priority: args.priority,
          scope: args.scope,
          dependsOn: args.depends_on,
        })
        // The new task joins the queue on the next tick: these counts are what is ahead of it.
        const full = rt.tasks.busySlots(t.agent) >= rt.options.tasks.concurrency
        const ahead = rt.tasks.waitingFor(t.agent)
        const queued = t.dependsOn.length
          ? ` It starts after ${t.dependsOn.join(", ")}.`
          : full
            ? ` It is queued behind ${rt.options.tasks.concurrency} running task(s) for the same model${ahead ? ` and ${ahead} waiting` : ""}.`
            : ""
        ctx.metadata({ title: `delegated ${t.id} to ${t.agent}`, metadata: { taskId: t.id } })
        return {
          title: `${t.agent}: ${t.title}`,
          output: `Started task ${t.id} (${t.agent}: "${t.title}").${queued} Keep talking with the user; the result will arrive as an [NSO · ${t.agent} · task ${t.id}] message.`,
          metadata: { taskId: t.id, agent: t.agent, status: t.status },
        }
      } catch (err) {
        throw modelError("delegate", err)
      }
    },
  })
}
