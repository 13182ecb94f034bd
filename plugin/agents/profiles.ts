import { readFileSync } from "node:fs"
import { join } from "node:path"
import { z } from "zod"
import { TEMPLATES_DIR } from "../paths.js"

/**
 * Agent profiles NSO registers into OpenCode. A profile says how the agent runs (mode, model,
 * prompt) and which side of the delegation contract it is on, which decides its NSO tools.
 */
export const Profile = z.object({
  description: z.string().min(1),
  mode: z.enum(["primary", "subagent", "all"]).default("subagent"),
  /** `provider/model`; absent means OpenCode's default model. */
  model: z.string().optional(),
  /** A file in agent_templates/ (`builder.md`) or the prompt text itself. */
  prompt: z.string().min(1),
  /** May hand work to background agents (gets delegate, tasks, task_result, task_cancel, answer). */
  delegates: z.boolean().default(false),
  /** OpenCode permission rules, e.g. `{ edit: "deny", bash: "ask" }`. */
  permission: z.record(z.string(), z.union([z.enum(["ask", "allow", "deny"]), z.record(z.string(), z.enum(["ask", "allow", "deny"]))])).default({}),
})
export type Profile = z.infer<typeof Profile>

export const BUILTIN_PROFILES: Record<string, z.input<typeof Profile>> = {
  oracle: {
    description: "Talks with you, delegates work to background agents, relays their questions",
    mode: "primary",
    prompt: "oracle.md",
    delegates: true,
  },
  builder: {
    description: "Implements changes in the code base as a background task",
    mode: "subagent",
    prompt: "builder.md",
  },
}

/** The NSO tools of each side of the contract. */
export const ORACLE_TOOLS = ["delegate", "tasks", "task_result", "task_cancel", "answer"] as const
export const BACKGROUND_TOOLS = ["ask_user"] as const

export function resolvePrompt(prompt: string): string {
  if (/^[\w./-]+\.md$/.test(prompt)) return readFileSync(join(TEMPLATES_DIR, prompt), "utf8").trim()
  return prompt
}

/** Permission rules that hide the other side's NSO tools from an agent (so they cost no tokens). */
export function toolPermissions(p: Pick<Profile, "delegates">, background: boolean): Record<string, "deny"> {
  const deny: Record<string, "deny"> = {}
  if (!p.delegates) for (const t of ORACLE_TOOLS) deny[t] = "deny"
  if (!background) for (const t of BACKGROUND_TOOLS) deny[t] = "deny"
  return deny
}

/** Per-prompt tool switches for a background agent's session (defence in depth). */
export function promptTools(p: Pick<Profile, "delegates">): Record<string, boolean> {
  const tools: Record<string, boolean> = { ask_user: true }
  for (const t of ORACLE_TOOLS) tools[t] = p.delegates
  return tools
}
