import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"

type CompactingHook = NonNullable<Hooks["experimental.session.compacting"]>

/** Keeps the task board in the compacted context so the Oracle does not forget background work. */
export function compactingHook(rt: Runtime): CompactingHook {
  return async (input, output) => {
    output.context.push(...rt.prompt.compacting(input.sessionID))
  }
}
