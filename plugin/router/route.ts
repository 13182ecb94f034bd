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

function agentRoute(env: Pick<Envelope, "source" | "kind" | "priority">): Route {
  const priority = priorityOf(env)
  if (env.kind === "failure") return { handler: "agent", priority, task: "failed", log: true }
  if (env.kind === "completion") return { handler: "agent", priority, task: "completed" }
  return { handler: "agent", priority }
}

/**
 * The priority a message is buffered at, from what it is. A sender may only raise its own to
 * urgent (an urgent question); everything else is the kind's.
 */
export function priorityOf(env: Pick<Envelope, "source" | "kind"> & { priority?: Priority }): Priority {
  if (env.priority === "urgent") return "urgent"
  switch (env.kind) {
    case "question":
    case "escalation":
    case "failure":
      return "high"
    case "completion":
      return "medium"
    case "status":
      // NSO's own status lines are about work the user asked for (cancelled, stalled): they matter.
      return env.source === "system" ? "high" : "low"
    case "answer":
    case "finding":
    case "assignment":
    case "handoff":
    case "reply":
      return "medium"
    case "request":
      return "high"
  }
}
