import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"
import { modelError } from "./errors.js"

const z = tool.schema

/** Hands work to a background agent; returns the task id at once. */
export function delegateTool(rt: Runtime) {
  return tool({
    description: `Start a background task: another agent works on it while you keep talking with the user. Returns the task id at once; the result arrives later as an [NSO …] message. Agents: ${[...rt.agents().keys()].join(", ")}.`,
    args: {
      agent: z.string().describe("Which agent does the work"),
      prompt: z.string().describe("Complete, self-contained instructions"),
      title: z.string().optional().describe("Short title"),
      priority: z.enum(["low", "medium", "high"]).optional(),
      scope: z.array(z.string()).optional().describe("Path globs the task may write to"),
      depends_on: z.array(z.string()).optional().describe("Task ids to finish first; their results are handed in"),
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
        const queued = t.dependsOn.length ? ` It starts after ${t.dependsOn.join(", ")}.` : ""
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
