import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { defineTool } from "./define.js"

const z = tool.schema

/** A background agent asks the user (through the Oracle) and waits. */
export function askUserTool(rt: Runtime) {
  return defineTool("ask_user", {
    description: "Ask the user when only they can decide; waits for the answer.",
    args: {
      question: z.string().min(1),
      urgency: z.enum(["normal", "urgent"]).optional(),
      options: z.array(z.string()).optional(),
      timeout_ms: z.number().int().min(1000).max(86_400_000).optional(),
    },
    async run(args, call) {
      const { question, outcome } = await rt.questions.ask(
        { sessionId: call.sessionId, question: args.question, urgency: args.urgency, options: args.options, timeoutMs: args.timeout_ms },
        call.signal,
      )
      call.show(`asked ${question.id}`)
      if (outcome.kind === "answered") return `The user answered: ${outcome.answer}`
      if (outcome.kind === "cancelled") return "The task was cancelled while waiting for the answer. Stop working on it."
      return `No answer after ${Math.round(outcome.waitedMs / 1000)} s. Proceed on your best assumption, state it clearly in your summary, and keep going. The question (${question.id}) stays open: if the user answers later, the answer arrives here as a message.`
    },
  })
}
