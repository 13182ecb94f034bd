import { z } from "zod"

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
    /** primary: the user picks it (the Oracle); subagent: only delegated to; all: both. Default: subagent. */
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
    /** May hand work to background agents (gets the delegating side of NSO's tools: delegate, tasks, answer). */
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
    /** Most tokens one task of this agent may spend (NSO stops it there; over `tasks.maxTokens`). */
    max_tokens: z.number().int().positive().optional(),
    escalate_on_uncertainty: z.boolean().default(true),
    tags: z.array(z.string()).default([]),
  })
  .strict()
export type Profile = z.infer<typeof Profile>

/** What a tool call does, in the terms a profile's boundaries speak (the adapter maps names to these). */
export type ToolEffect = "edit" | "bash" | "webfetch" | "delegate" | "ask"

/** Glob match for tool names (`*` any run of characters). */
export function toolGlob(glob: string): RegExp {
  return new RegExp(`^${glob.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*")}$`)
}

/**
 * Whether the profile lets its agent make a tool call, and if not, why (for the refusal
 * message). This is NSO's own check; OpenCode's permissions say the same where they can.
 */
export function toolVerdict(p: Profile, call: { name: string; effect?: ToolEffect }): { ok: true } | { ok: false; why: string } {
  const { name, effect } = call
  if (effect === "delegate" && !p.delegates) return { ok: false, why: "it does not delegate (only coordinators do)" }
  if (effect === "edit" && p.permission.edit === "deny") return { ok: false, why: "its role may not change files" }
  if (effect === "bash" && p.permission.bash === "deny") return { ok: false, why: "its role may not run commands" }
  if (effect === "webfetch" && p.permission.webfetch === "deny") return { ok: false, why: "its role may not fetch from the web" }
  if (p.tools.denied.some((g) => toolGlob(g).test(name))) return { ok: false, why: `its profile denies ${name}` }
  if (p.tools.allowed.length && !p.tools.allowed.some((g) => toolGlob(g).test(name))) return { ok: false, why: `its profile allows only ${p.tools.allowed.join(", ")}` }
  return { ok: true }
}

/**
 * Whether the profile's bash rules let its agent run this command as a background job, and if
 * not, why. Pattern rules are read as OpenCode reads them: wildcards (`*` any run), the last
 * matching pattern wins. A job cannot stop to ask the user, so `ask` refuses too.
 */
export function commandVerdict(p: Profile, command: string): { ok: true } | { ok: false; why: string } {
  const bash = p.permission.bash
  if (!mayRunBash(p)) return { ok: false, why: bash === "deny" ? "its role may not run commands" : "its profile's tool rules leave out bash" }
  if (bash === "ask") return { ok: false, why: "its commands need the user's approval, which a background job cannot ask for; run it with bash instead" }
  if (!bash || typeof bash === "string") return { ok: true }
  let rule: "ask" | "allow" | "deny" | undefined
  for (const [pattern, r] of Object.entries(bash)) if (toolGlob(pattern).test(command.trim())) rule = r
  if (rule === "deny") return { ok: false, why: "its bash rules deny this command" }
  if (rule === "ask") return { ok: false, why: "its bash rules need the user's approval for this command, which a background job cannot ask for; run it with bash instead" }
  return { ok: true }
}

/** Whether the profile lets its agent run bash at all (by permission and by its tool lists). */
export function mayRunBash(p: Profile): boolean {
  if (p.permission.bash === "deny") return false
  if (p.tools.denied.some((g) => toolGlob(g).test("bash"))) return false
  return !p.tools.allowed.length || p.tools.allowed.some((g) => toolGlob(g).test("bash"))
}
