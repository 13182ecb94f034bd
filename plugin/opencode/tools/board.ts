import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { contextPath, formatContext, readContext, updateContext } from "../../messaging/project-context.js"
import { defineTool } from "./define.js"

const z = tool.schema

/**
 * The shared board of a background agent's workflow (findings, `name = value` variables,
 * decisions, broadcasts), and with `project` the project's own goal and notes, kept across
 * sessions (what `nso context` shows).
 */
export function boardTool(rt: Runtime) {
  return defineTool("board", {
    description: "Workflow board: post (finding, decision, name = value) or read (filter). project: true = the project's goal and notes, kept across sessions.",
    args: {
      post: z.string().optional(),
      filter: z.string().optional(),
      project: z.boolean().optional(),
    },
    async run(args, call) {
      if (args.project) {
        const path = contextPath(rt.projectDir, rt.options.stateDir)
        const c = args.post ? await updateContext(rt.deps, path, { note: args.post }, call.agent) : await readContext(rt.deps, path)
        return `${args.post ? "Noted in the project notes.\n\n" : ""}${formatContext(c)}`
      }
      if (args.post) {
        const p = await rt.messenger.postToBoard(call.sessionId, call.agent, args.post, /^\s*decision\b/i.test(args.post) ? "decision" : "finding")
        call.show(`posted ${p.kind}${p.key ? ` ${p.key}` : ""}`)
        return `Posted (${p.kind}${p.key ? ` ${p.key}` : ""}, ${p.id}); your workflow's agents see it in their board digest.`
      }
      const { workflow, posts } = rt.messenger.boardFor(call.sessionId, args.filter)
      if (!posts.length) return args.filter ? `Nothing on the board of ${workflow} matches "${args.filter}".` : `The board of ${workflow} is empty.`
      return `Board of ${workflow} (${posts.length} post(s), oldest first):\n${posts.map((p) => `- ${p.id} · ${p.kind}${p.key ? ` ${p.key}` : ""} · ${p.from}: ${p.text}`).join("\n")}`
    },
  })
}
