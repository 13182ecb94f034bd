import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"

type CommandHook = NonNullable<Hooks["command.execute.before"]>

/** `/answer <question id> <text>`: records the answer, then tells the Oracle what happened. */
export function commandHook(rt: Runtime): CommandHook {
  return async (input, output) => {
    if (input.command !== "answer") return
    const m = /^\s*(\S+)\s+([\s\S]+)$/.exec(input.arguments)
    let text: string
    if (!m) {
      const open = rt.questions.open()
      text = `[NSO · system] /answer needs a question id and the answer, like: /answer q_abc123 use PostgreSQL. ${open.length ? `Open questions: ${open.map((q) => `${q.id} (${q.from}: ${q.text})`).join("; ")}` : "There are no open questions."}`
    } else {
      try {
        const r = await rt.questions.answer(m[1]!, m[2]!.trim(), "user")
        text = `[NSO · system] The user answered question ${r.question.id} (${r.question.from}: "${r.question.text}") with /answer: "${m[2]!.trim()}". It was sent ${r.delivered}. Acknowledge it in one short sentence.`
      } catch (err) {
        text = `[NSO · system] The /answer command failed: ${(err as Error).message}`
      }
    }
    // OpenCode ignores a replaced array: change it in place.
    output.parts.splice(0, output.parts.length, { type: "text", text, synthetic: true, metadata: { nso: { source: "system", from: "nso", kind: "answer", ids: [] } } } as never)
  }
}
