import type { Profile } from "../agents/profiles.js"
import { mayRunBash } from "../agents/profiles.js"
import { BACKGROUND_TOOLS, JOB_TOOLS, NSO_TOOLS, OPENCODE_TASK_TOOL, ORACLE_TOOLS } from "./shapes.js"

/**
 * A profile's boundaries in OpenCode's permission language. OpenCode ignores `tools` switches in
 * an agent's config, so hiding a tool is a `deny` permission; NSO's guard checks again.
 */
export function permissionRules(p: Profile, background: boolean): Record<string, unknown> {
  const rules: Record<string, unknown> = {}
  if (p.permission.edit) rules.edit = p.permission.edit
  if (p.permission.bash) rules.bash = p.permission.bash
  if (p.permission.webfetch) rules.webfetch = p.permission.webfetch
  for (const g of p.tools.denied) rules[g] = "deny"
  if (!p.delegates) for (const t of ORACLE_TOOLS) rules[t] = "deny"
  if (!background) for (const t of BACKGROUND_TOOLS) rules[t] = "deny"
  // Jobs run commands: only for an agent that may run bash. Its bash rules (patterns included)
  // are applied to each job's command by the tool itself, as OpenCode applies them to bash.
  if (!mayRunBash(p)) for (const t of JOB_TOOLS) rules[t] = "deny"
  // One way to hand off work: OpenCode's blocking `task` tool (5 KB of schema that lists every
  // agent) would compete with `delegate`, and `ask_user` cannot reach the user through it.
  rules[OPENCODE_TASK_TOOL] = "deny"
  return rules
}

/** For agents NSO does not own: none of NSO's tools. */
export function foreignAgentRules(): Record<string, "deny"> {
  return Object.fromEntries(NSO_TOOLS.map((t) => [t, "deny" as const]))
}

/** Per-prompt tool switches for a background agent's session (defence in depth). */
export function promptTools(delegates: boolean): Record<string, boolean> {
  const tools: Record<string, boolean> = {}
  for (const t of BACKGROUND_TOOLS) tools[t] = true
  for (const t of ORACLE_TOOLS) tools[t] = delegates
  return tools
}

