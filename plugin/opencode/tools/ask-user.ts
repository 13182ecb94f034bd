import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { TaskError } from "../../tasks/manager.js"
import { defineTool } from "./define.js"

const z = tool.schema

/** A background agent asks the user (through the Oracle) and waits. */
export function askUserTool(rt: Runtime) {
  return defineTool("ask_user", {
    description: "Ask the user when only they can decide; waits for the answer.",
    args: {
      question: z.string(),
      urgency: z.enum(["normal", "urgent"]).optional(),
      options: z.array(z.string()).optional(),
      timeout_ms: z.number().optional(),
    },
    async run(args, call) {
      // Checked here rather than in the schema: every schema byte is paid on every request.
      if (!args.question.trim()) throw new TaskError("question is empty: write what the user should decide.")
      if (args.timeout_ms !== undefined && (args.timeout_ms < 1000 || args.timeout_ms > 86_400_000))
        throw new TaskError(`timeout_ms must be between 1000 (1 s) and 86400000 (a day); got ${args.timeout_ms}.`)
      const { question, outcome } = await rt.questions.ask(
        { sessionId: call.sessionId, agent: call.agent, question: args.question, urgency: args.urgency, options: args.options, timeoutMs: args.timeout_ms },
        call.signal,
        // The row in the TUI says what is asked and how to answer while the call waits.
        (q) => call.show(`${q.id}: ${q.text.slice(0, 80)}${q.options.length ? ` [${q.options.join(" | ")}]` : ""} — waiting for /answer ${q.id}`, { questionId: q.id, options: q.options }),
      )
      call.show(`${question.id}: ${outcome.kind === "answered" ? `answered "${outcome.answer.slice(0, 60)}"` : outcome.kind === "timeout" ? "no answer yet, going on" : outcome.kind === "interrupted" ? "a message arrived first" : "cancelled"}`)
      if (outcome.kind === "answered") return `The user answered: ${outcome.answer}`
      if (outcome.kind === "interrupted")
        return `No answer yet, but messages arrived for you while you waited:\n\n${outcome.messages}\n\nAct on them. Your question (${question.id}) stays open: when the user answers, the answer arrives here as a message.`
      if (outcome.kind === "cancelled") return "The task was cancelled while waiting for the answer. Stop working on it."
      return `No answer after ${Math.round(outcome.waitedMs / 1000)} s. Proceed on your best assumption, state it clearly in your summary, and keep going. The question (${question.id}) stays open: if the user answers later, the answer arrives here as a message.`
    },
  })
}
