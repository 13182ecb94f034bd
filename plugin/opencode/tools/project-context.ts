import { tool } from "@opencode-ai/plugin"
import { contextPath, formatContext, readContext, updateContext } from "../../messaging/project-context.js"
import type { Runtime } from "../../runtime.js"
import { defineTool } from "./define.js"

const z = tool.schema

/** Read or update the project's shared goal, status and notes. */
export function projectContextTool(rt: Runtime) {
  return defineTool("project_context", {
    description: "Shared project goal, status and notes: get, or update (note appends).",
    args: {
      action: z.enum(["get", "update"]),
      // Lengths are checked by the ContextUpdate schema (with an error the model can act on),
      // not here, where every bound would be paid for on every request.
      goal: z.string().optional(),
      status: z.string().optional(),
      note: z.string().optional(),
    },
    async run(args, call) {
      const path = contextPath(rt.projectDir, rt.options.stateDir)
      if (args.action === "get") return formatContext(await readContext(rt.deps, path))
      const next = await updateContext(rt.deps, path, { goal: args.goal, status: args.status, note: args.note }, call.agent || "agent")
      return `Updated.\n${formatContext(next, 3)}`
    },
  })
}
