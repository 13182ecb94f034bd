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
        { sessionId: call.sessionId, agent: call.agent, question: args.question, urgency: args.urgency, options: args.options, timeoutMs: args.timeout_ms },
        call.signal,
        // The row in the TUI says what is asked and how to answer while the call waits.
        (q) => call.show(`${q.id}: ${q.text.slice(0, 80)}${q.options.length ? ` [${q.options.join(" | ")}]` : ""} — waiting for /answer ${q.id}`, { questionId: q.id, options: q.options }),
      )
      call.show(`${question.id}: ${outcome.kind === "answered" ? `answered "${outcome.answer.slice(0, 60)}"` : outcome.kind === "timeout" ? "no answer yet, going on" : "cancelled"}`)
      if (outcome.kind === "answered") return `The user answered: ${outcome.answer}`
      if (outcome.kind === "cancelled") return "The task was cancelled while waiting for the answer. Stop working on it."
      return `No answer after ${Math.round(outcome.waitedMs / 1000)} s. Proceed on your best assumption, state it clearly in your summary, and keep going. The question (${question.id}) stays open: if the user answers later, the answer arrives here as a message.`
    },
  })
}
