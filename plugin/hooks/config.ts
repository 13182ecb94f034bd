import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"

type ConfigHook = NonNullable<Hooks["config"]>

/** NSO's slash commands, registered into OpenCode's config. */
export const COMMANDS = {
  "nso-status": {
    description: "NSO: show background tasks, pending agent messages and the shared project context",
    template: "Call the project_context tool with action \"get\" and summarise NSO's state for me in a few lines.",
  },
} as const

export function configHook(_rt: Runtime): ConfigHook {
  return async (config) => {
    config.command ??= {}
    for (const [name, cmd] of Object.entries(COMMANDS)) config.command[name] ??= { ...cmd }
  }
}
