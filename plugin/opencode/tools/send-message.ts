import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { TaskError } from "../../tasks/manager.js"
import { defineTool } from "./define.js"

const z = tool.schema

/**
 * A background agent talks to another: tell, ask and wait for the reply, or escalate. One tool
 * for all of it, because every schema is paid on every request of every background agent.
 */
export function sendMessageTool(rt: Runtime) {
  return defineTool("send_message", {
    description:
      "Message an agent of your workflow (name/task id), coordinator, oracle or * (all, via the board). request + wait_ms: wait for the reply. Answer a request: kind reply, reply_to its msg id. escalation: a problem for your coordinator/the user.",
    args: {
      to: z.string(),
      text: z.string(),
      kind: z.enum(["finding", "status", "request", "reply", "escalation"]).optional(),
      reply_to: z.string().optional(),
      private: z.boolean().optional(),
      wait_ms: z.number().optional(),
    },
    async run(args, call) {
      if (args.wait_ms !== undefined && (args.wait_ms < 0 || args.wait_ms > 3_600_000)) throw new TaskError(`wait_ms must be between 0 and 3600000 (one hour); got ${args.wait_ms}.`)
      const input = { sessionId: call.sessionId, from: call.agent, source: "agent" as const, to: args.to, text: args.text, replyTo: args.reply_to, private: args.private }
      if (args.kind === "request" && args.wait_ms) {
        const { sent, outcome } = await rt.messenger.request(input, args.wait_ms, call.signal)
        call.show(`request ${sent.id} → ${sent.to}: ${outcome.kind === "reply" ? "replied" : outcome.kind}`)
        if (sent.outcome === "not sent") return `Not sent: ${sent.note}.`
        if (outcome.kind === "reply") return `${outcome.from} replied: ${outcome.text}`
        if (outcome.kind === "interrupted") return `No reply yet, but messages arrived for you while you waited:\n\n${outcome.messages}\n\nAct on them. If ${sent.to} replies later, the reply arrives as a message.`
        if (outcome.kind === "cancelled") return "Your task was cancelled while waiting. Stop working on it."
        return `No reply from ${sent.to} after ${Math.round(outcome.waitedMs / 1000)} s. Go on with your best assumption and say so in your result; a later reply arrives as a message.`
      }
      const sent = args.kind === "escalation" && args.to === "coordinator" ? await rt.messenger.escalate(call.sessionId, call.agent, args.text) : await rt.messenger.send({ ...input, kind: args.kind })
      call.show(`${sent.id} → ${sent.to}: ${sent.outcome}`)
      if (sent.outcome === "not sent") return `Not sent: ${sent.note}.`
      return `Message ${sent.id} to ${sent.to}: ${sent.outcome}${sent.note ? ` (${sent.note})` : ""}.${args.kind === "request" ? " Its reply will arrive as a message (or pass wait_ms to wait for it)." : ""}`
    },
  })
}
