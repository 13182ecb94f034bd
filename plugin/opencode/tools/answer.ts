import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { defineTool } from "./define.js"

const z = tool.schema

/** The Oracle passes the user's answer back to the agent that asked. */
export function answerTool(rt: Runtime) {
  return defineTool("answer", {
    description: "Give the user's answer to an agent's question (q_… id).",
    args: {
      question_id: z.string(),
      answer: z.string(),
    },
    async run(args) {
      const r = await rt.questions.answer(args.question_id, args.answer, "user")
      return `Answer to ${r.question.id} recorded: ${r.delivered}.`
    },
  })
}
