import type { Hooks } from "@opencode-ai/plugin"
import { BACKGROUND_TOOLS, ORACLE_TOOLS, resolvePrompt, toolPermissions } from "../agents/profiles.js"
import type { Runtime } from "../runtime.js"

type ConfigHook = NonNullable<Hooks["config"]>

/** NSO's slash commands. `/answer` is handled in `command.execute.before`. */
export const COMMANDS = {
  answer: {
    description: "NSO: answer a background agent's question — /answer <question id> <answer>",
    template: "$ARGUMENTS",
  },
  "nso-status": {
    description: "NSO: show background tasks and what is waiting for you",
    template: "Call the tasks tool and summarise NSO's background work for me in a few lines.",
  },
} as const

/** Registers NSO's agents (with tool exposure through permissions) and commands. */
export function configHook(rt: Runtime): ConfigHook {
  return async (config) => {
    config.agent ??= {}
    const agents = config.agent as Record<string, Record<string, unknown> | undefined>
    for (const [name, p] of rt.profiles) {
      const background = p.mode !== "primary"
      agents[name] = {
        ...agents[name],
        mode: p.mode,
        description: p.description,
        prompt: resolvePrompt(p.prompt),
        ...(p.model ? { model: p.model } : {}),
        permission: { ...p.permission, ...toolPermissions(p, background), ...((agents[name]?.permission as object) ?? {}) },
      }
    }
    // OpenCode's own agents: primaries may delegate, nobody but NSO's background agents asks.
    for (const [name, delegates] of [["build", true], ["plan", true], ["general", false], ["explore", false]] as const) {
      if (rt.profiles.has(name)) continue
      const deny: Record<string, "deny"> = {}
      for (const t of BACKGROUND_TOOLS) deny[t] = "deny"
      if (!delegates) for (const t of ORACLE_TOOLS) deny[t] = "deny"
      agents[name] = { ...agents[name], permission: { ...deny, ...((agents[name]?.permission as object) ?? {}) } }
    }
    config.command ??= {}
    for (const [name, cmd] of Object.entries(COMMANDS)) config.command[name] ??= { ...cmd }
  }
}
