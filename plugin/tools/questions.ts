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

/** A background agent asks the user (through the Oracle) and waits. */
export function askUserTool(rt: Runtime) {
  return tool({
    description: "Ask the user when only they can decide; waits for the answer.",
    args: {
      question: z.string().min(1),
      urgency: z.enum(["normal", "urgent"]).optional(),
      options: z.array(z.string()).optional(),
      timeout_ms: z.number().int().min(1000).max(86_400_000).optional(),
    },
    async execute(args, ctx) {
      try {
        const { question, outcome } = await rt.questions.ask(
          { sessionId: ctx.sessionID, question: args.question, urgency: args.urgency, options: args.options, timeoutMs: args.timeout_ms },
          ctx.abort,
        )
        ctx.metadata({ title: `asked ${question.id}` })
        if (outcome.kind === "answered") return `The user answered: ${outcome.answer}`
        if (outcome.kind === "cancelled") return "The task was cancelled while waiting for the answer. Stop working on it."
        return `No answer after ${Math.round(outcome.waitedMs / 1000)} s. Proceed on your best assumption, state it clearly in your summary, and keep going. The question (${question.id}) stays open: if the user answers later, the answer arrives here as a message.`
      } catch (err) {
        throw modelError("ask_user", err)
      }
    },
  })
}
