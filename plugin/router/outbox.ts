import type { Deps } from "../deps.js"
import { IdPrefix, type Envelope } from "../protocol.js"
import { rootSession, type TaskTable } from "../tasks/tree.js"
import { priorityOf } from "./route.js"

/**
 * What a part of NSO hands over to be said: who says it, what it is, and what it is about. Where
 * it goes and how urgent it is are not the sender's to decide.
 */
export type Outgoing = Pick<Envelope, "source" | "from" | "to" | "kind" | "text"> &
  Partial<Pick<Envelope, "priority" | "taskId" | "questionId" | "replyTo" | "expiresAt" | "hops" | "workflowId" | "private">> & {
    /** Only for messages about no task: the session to deliver to. */
    sessionId?: string
    /** An agent message for a running task: delivered into that task's own session. */
    toTaskId?: string
    /** Delivered into this session whatever the message is about (the Oracle's, for an agent's message to it). */
    toSessionId?: string
    /** A message id chosen by the sender (so a reply can name it before it is posted). */
    id?: string
  }

export interface OutboxPorts {
  tasks: TaskTable
  /** Buffers the finished envelope for its session; resolves once it is durable. */
  push(env: Envelope & { sessionId: string }): Promise<void>
}

/**
 * The one place that decides a message's recipient session, priority and hop count. Every
 * message NSO buffers for an agent passes here exactly once.
 */
export class Outbox {
  constructor(
    private readonly deps: Pick<Deps, "clock" | "ids" | "log">,
    private readonly ports: OutboxPorts,
  ) {}

  /**
   * The session a message about a task is delivered to. What needs the user (a question, an
   * escalation) goes to the session the user talks in, at the top of the task tree; the rest
   * (results, failures, status) goes to whoever delegated the task, which may be another task.
   */
  recipient(msg: Pick<Outgoing, "kind" | "taskId" | "sessionId" | "toTaskId" | "toSessionId">): string {
    if (msg.toSessionId) return msg.toSessionId
    if (msg.toTaskId) {
      const to = this.ports.tasks.get(msg.toTaskId)
      if (!to?.sessionId) throw new Error(`NSO cannot deliver to task ${msg.toTaskId}: it has no session (not started)`)
      return to.sessionId
    }
    const task = msg.taskId ? this.ports.tasks.get(msg.taskId) : undefined
    if (task) return msg.kind === "question" || msg.kind === "escalation" ? rootSession(this.ports.tasks, task) : task.parentSessionId
    if (msg.sessionId) return msg.sessionId
    throw new Error(`NSO cannot deliver a ${msg.kind} from ${"taskId" in msg && msg.taskId ? `unknown task ${msg.taskId}` : "nowhere"}: it names no task and no session`)
  }

  async post(msg: Outgoing): Promise<Envelope & { sessionId: string }> {
    const priority = priorityOf(msg)
    if (msg.kind === "failure") this.deps.log.log("warn", `${msg.from} reported a failure`, { taskId: msg.taskId, text: msg.text.slice(0, 300) })
    const { toTaskId: _t, toSessionId: _s, id, ...fields } = msg
    const env: Envelope & { sessionId: string } = {
      ...fields,
      sessionId: this.recipient(msg),
      priority,
      id: id ?? this.deps.ids.id(IdPrefix.message),
      time: this.deps.clock.now(),
      hops: msg.hops ?? 0,
    }
    await this.ports.push(env)
    return env
  }
}
