import { z } from "zod"
import { WRITE_TOOLS } from "../tasks/scope.js"

/**
 * Agent profiles: what an agent is (role, specialization, model, prompt, knowledge) and what it
 * may do (tools, permissions). NSO registers each as a real OpenCode agent and enforces the
 * boundaries twice: through OpenCode's permissions, and again in its own tool guard.
 */

const Rule = z.enum(["ask", "allow", "deny"])

export const Profile = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9_-]*$/, { message: "expected a lower-case name like \"builder\" or \"code-review-security\"" }),
    description: z.string().min(1),
    /** coordinator: talks to the user or orchestrates; specialist: expert on one area; worker: does tasks. */
    role: z.enum(["coordinator", "specialist", "worker"]).default("worker"),
    specialization: z.string().default(""),
    /** primary: selectable by the user; subagent: delegated to only. Default: primary for coordinators without a parent. */
    mode: z.enum(["primary", "subagent", "all"]).default("subagent"),
    /** `provider/model`, or a tier (`fast`, `strong`) resolved through the `models` option. */
    model: z.string().optional(),
    temperature: z.number().min(0).max(2).optional(),
    max_output_tokens: z.number().int().positive().optional(),
    /** A file in agent_templates/ (`builder.md`) or the prompt text itself. */
    prompt: z.string().min(1),
    tools: z
      .object({
        /** Globs of tool names this agent may use; empty means all (minus `denied`). MCP tools are named `<server>_<tool>`. */
        allowed: z.array(z.string()).default([]),
        denied: z.array(z.string()).default([]),
      })
      .strict()
      .default({ allowed: [], denied: [] }),
    permission: z
      .object({
        edit: Rule.optional(),
        bash: z.union([Rule, z.record(z.string(), Rule)]).optional(),
        webfetch: Rule.optional(),
      })
      .strict()
      .default({}),
    /** May hand work to background agents (gets delegate, tasks, task_result, task_cancel, answer). */
    delegates: z.boolean().default(false),
    knowledge: z
      .array(
        z
          .object({
            /** A folder of runbooks (markdown), relative to the project. */
            folder: z.string().min(1),
            /** Only files carrying one of these tags (front matter `tags:`); empty means all. */
            tags: z.array(z.string()).default([]),
          })
          .strict(),
      )
      .default([]),
    style: z.enum(["concise", "detailed", "technical"]).default("concise"),
    max_turns: z.number().int().positive().optional(),
    escalate_on_uncertainty: z.boolean().default(true),
    tags: z.array(z.string()).default([]),
  })
  .strict()
export type Profile = z.infer<typeof Profile>

/** The NSO tools of each side of the delegation contract. */
export const ORACLE_TOOLS = ["delegate", "tasks", "task_result", "task_cancel", "answer"] as const
export const BACKGROUND_TOOLS = ["ask_user"] as const


/** Glob match for tool names (`*` any run of characters). */
export function toolGlob(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`)
}

/**
 * Whether the profile lets its agent use a tool, and if not, why (for the refusal message).
 * This is NSO's own check; OpenCode's permissions say the same where they can.
 */
export function toolVerdict(p: Profile, tool: string): { ok: true } | { ok: false; why: string } {
  if (!p.delegates && (ORACLE_TOOLS as readonly string[]).includes(tool)) return { ok: false, why: "it does not delegate (only coordinators do)" }
  if (WRITE_TOOLS.has(tool) && p.permission.edit === "deny") return { ok: false, why: "its role may not change files" }
  if (tool === "bash" && p.permission.bash === "deny") return { ok: false, why: "its role may not run commands" }
  if (tool === "webfetch" && p.permission.webfetch === "deny") return { ok: false, why: "its role may not fetch from the web" }
  if (p.tools.denied.some((g) => toolGlob(g).test(tool))) return { ok: false, why: `its profile denies ${tool}` }
  if (p.tools.allowed.length && !p.tools.allowed.some((g) => toolGlob(g).test(tool))) return { ok: false, why: `its profile allows only ${p.tools.allowed.join(", ")}` }
  return { ok: true }
}

/** OpenCode permission rules for a profile: its own rules, plus denies that hide tools it may not use. */
export function permissionRules(p: Profile, background: boolean): Record<string, unknown> {
  const rules: Record<string, unknown> = {}
  if (p.permission.edit) rules.edit = p.permission.edit
  if (p.permission.bash) rules.bash = p.permission.bash
  if (p.permission.webfetch) rules.webfetch = p.permission.webfetch
  for (const g of p.tools.denied) rules[g] = "deny"
  if (!p.delegates) for (const t of ORACLE_TOOLS) rules[t] = "deny"
  if (!background) for (const t of BACKGROUND_TOOLS) rules[t] = "deny"
  return rules
}

/** Per-prompt tool switches for a background agent's session (defence in depth). */
export function promptTools(p: Pick<Profile, "delegates">): Record<string, boolean> {
  const tools: Record<string, boolean> = { ask_user: true }
  for (const t of ORACLE_TOOLS) tools[t] = p.delegates
  return tools
}
