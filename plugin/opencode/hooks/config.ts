import type { Hooks } from "@opencode-ai/plugin"
import { foreignAgentRules, permissionRules } from "../permissions.js"
import { OPENCODE_AGENTS } from "../shapes.js"
import type { Runtime } from "../../runtime.js"

type ConfigHook = NonNullable<Hooks["config"]>

/** NSO's slash commands. `/answer` is handled in `command.execute.before`. */
export const COMMANDS = {
  answer: {
    description: "NSO: answer a background agent's question — /answer <question id> <answer>",
    template: "$ARGUMENTS",
  },
  "nso-status": {
    description: "NSO: the board — tasks of every session, questions waiting for you (no model turn)",
    template: "$ARGUMENTS",
  },
  "nso-cancel": {
    description: "NSO: cancel a background task or team run and all it started — /nso-cancel <task or run id> | all (no model turn)",
    template: "$ARGUMENTS",
  },
  "nso-cancel-all": {
    description: "NSO: stop all background work of this session — every task and team run it started (no model turn)",
    template: "$ARGUMENTS",
  },
  tell: {
    description: "NSO: tell a running background task (or every member of a team run) something — /tell <task or run id> <text> (no model turn)",
    template: "$ARGUMENTS",
  },
  team: {
    description: "NSO: run a team in the background — /team <team> <goal> (no model turn; its one result arrives here)",
    template: "$ARGUMENTS",
  },
} as const

/**
 * Registers every NSO profile as a real OpenCode agent. Tool rules become permissions (OpenCode
 * ignores `tools` set here); the tool guard checks them again.
 */
export function configHook(rt: Runtime): ConfigHook {
  return async (config) => {
    config.agent ??= {}
    const agents = config.agent as Record<string, Record<string, unknown> | undefined>
    // Agents NSO does not own — OpenCode's and the user's own — are offered none of NSO's tools:
    // a user who switches to `build` does not pay for tools it will not use.
    for (const name of new Set([...OPENCODE_AGENTS, ...Object.keys(agents)])) {
      if (rt.catalogue.profiles.has(name)) continue
      agents[name] = { ...agents[name], permission: { ...foreignAgentRules(), ...((agents[name]?.permission as object) ?? {}) } }
    }
    for (const [name, p] of rt.catalogue.profiles) {
      const model = rt.catalogue.modelOf(p)
      const mine = agents[name]
      agents[name] = {
        ...mine,
        mode: p.mode,
        description: p.description,
        prompt: rt.catalogue.promptOf(p),
        ...(model ? { model } : {}),
        ...(p.temperature !== undefined ? { temperature: p.temperature } : {}),
        ...(p.max_turns !== undefined ? { maxSteps: p.max_turns } : {}),
        // The user's own opencode.json rules for this agent win over the profile's.
        permission: { ...permissionRules(p, p.mode !== "primary"), ...((mine?.permission as object) ?? {}) },
      }
    }
    // The user talks to the Oracle unless they chose otherwise.
    const cfg = config as { default_agent?: string }
    if (rt.options.defaultAgent && !cfg.default_agent && rt.catalogue.profiles.has(rt.options.defaultAgent)) cfg.default_agent = rt.options.defaultAgent
    config.command ??= {}
    for (const [name, cmd] of Object.entries(COMMANDS)) config.command[name] ??= { ...cmd }
  }
}
