import type { Envelope, Priority } from "../protocol.js"
import type { IntentMonitor, IntentSuggestion } from "./intent.js"

/**
 * Where a classified message goes. User messages never wait: they go to the intent monitor.
 * Agent messages go to the agent handler, which buffers them for the Oracle at a priority that
 * depends on what they are. System messages are handled without the model.
 */
export type Route =
  | { handler: "intent"; suggestion?: IntentSuggestion }
  | {
      handler: "agent"
      /** Buffer at this priority for delivery to the Oracle. */
      priority: Priority
      /** Update the task this message belongs to. */
      task?: "completed" | "failed"
      /** Also write it to the log at warning level. */
      log?: boolean
    }
  | { handler: "system" }

export function route(env: Pick<Envelope, "source" | "kind" | "priority" | "text">, intents: IntentMonitor): Route {
  switch (env.source) {
    case "user":
      return { handler: "intent", suggestion: intents(env.text) }
    case "system":
      return { handler: "system" }
    case "agent":
      return agentRoute(env)
  }
}

function agentRoute(env: Pick<Envelope, "kind" | "priority">): Route {
  // An agent may raise its own priority to urgent (an urgent question); otherwise the kind decides.
  const atLeast = (p: Priority): Priority => (env.priority === "urgent" ? "urgent" : p)
  switch (env.kind) {
    case "question":
    case "escalation":
      return { handler: "agent", priority: atLeast("high") }
    case "failure":
      return { handler: "agent", priority: atLeast("high"), task: "failed", log: true }
    case "completion":
      return { handler: "agent", priority: atLeast("medium"), task: "completed" }
    case "status":
      return { handler: "agent", priority: atLeast("low") }
    case "answer":
    case "finding":
    case "assignment":
    case "handoff":
      return { handler: "agent", priority: atLeast("medium") }
  }
}
