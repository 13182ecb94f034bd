import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"
import { modelError } from "./errors.js"

const z = tool.schema

/** The Oracle passes the user's answer back to the agent that asked. */
export function answerTool(rt: Runtime) {
  return tool({
    description: "Give the user's answer to an agent's question (q_… id).",
    args: {
      question_id: z.string(),
      answer: z.string(),
    },
    async execute(args) {
      try {
        const r = await rt.questions.answer(args.question_id, args.answer, "user")
        return `Answer to ${r.question.id} recorded and sent ${r.delivered}.`
      } catch (err) {
        throw modelError("answer", err)
      }
    },
  })
}
