import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"

type ParamsHook = NonNullable<Hooks["chat.params"]>

/** A profile's model options that OpenCode's agent config has no field for. */
export function paramsHook(rt: Runtime): ParamsHook {
  return async (input, output) => {
    const p = rt.catalogue.profiles.get(input.agent)
    if (p?.max_output_tokens !== undefined) output.maxOutputTokens = p.max_output_tokens
    if (p?.temperature !== undefined) output.temperature = p.temperature
  }
}
