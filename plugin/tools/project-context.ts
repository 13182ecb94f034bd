import { tool } from "@opencode-ai/plugin"
import { contextPath, formatContext, readContext, updateContext } from "../messaging/project-context.js"
import { ValidationError } from "../protocol.js"
import type { Runtime } from "../runtime.js"

const z = tool.schema

/** Read or update the project's shared goal, status and notes. */
export function projectContextTool(rt: Runtime) {
  return tool({
    description: "Shared project goal, status and notes: get, or update (note appends).",
    args: {
      action: z.enum(["get", "update"]),
      goal: z.string().max(2000).optional(),
      status: z.string().max(2000).optional(),
      note: z.string().max(4000).optional(),
    },
    async execute(args, ctx) {
      const path = contextPath(rt.projectDir, rt.options.stateDir)
      if (args.action === "get") return formatContext(await readContext(rt.deps, path))
      try {
        const by = ctx.agent || "agent"
        const next = await updateContext(rt.deps, path, { goal: args.goal, status: args.status, note: args.note }, by)
        return `Updated.\n${formatContext(next, 3)}`
      } catch (err) {
        if (err instanceof ValidationError || err instanceof TypeError)
          throw new Error(`project_context: ${err.message}. For action "update" pass at least one of goal, status or note.`)
        throw err
      }
    },
  })
}
