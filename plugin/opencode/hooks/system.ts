import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"

type SystemHook = NonNullable<Hooks["experimental.chat.system.transform"]>

/** Adds NSO's part of the system prompt: memory and header guide (root), isolation header (task). */
export function systemHook(rt: Runtime): SystemHook {
  return async (input, output) => {
    if (!input.sessionID) return
    output.system.push(...(await rt.prompt.system(input.sessionID)))
  }
}
