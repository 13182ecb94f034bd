import type { Hooks } from "@opencode-ai/plugin"
import type { IncomingPart } from "../../router/classify.js"
import type { Runtime } from "../../runtime.js"

type ChatMessageHook = NonNullable<Hooks["chat.message"]>

/** Every message into a session is tagged by where it came from. */
export function chatMessageHook(rt: Runtime): ChatMessageHook {
  return async (input, output) => {
    const parts: IncomingPart[] = []
    for (const p of output.parts) {
      if (p.type !== "text") continue
      parts.push({ text: p.text, synthetic: p.synthetic, nso: (p.metadata as { nso?: unknown } | undefined)?.nso })
    }
    await rt.inbound.message(input.sessionID, output.message.agent ?? input.agent, parts, input.messageID ?? output.message.id)
  }
}
