import type { Deps } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import type { MessagingOptions } from "../options.js"
import { IdPrefix, type BoardPost, type Envelope, type JournalEvent, type Kind, type Task } from "../protocol.js"
import type { Outgoing } from "../router/outbox.js"
import { TaskError, type TaskManager } from "../tasks/manager.js"
import { header } from "../buffer/format.js"
import { coordinatorOf, resolve, senderWorkflow, type Sender, type World } from "./address.js"
import { LoopGuard } from "./guard.js"

/**
 * Agent-to-agent messages: direct, broadcast, requests that wait for a reply, escalations, and
 * the shared board. A message is resolved (address.ts), passed through the loop guard, audited,
 * then handed to the outbox like every other agent message — so it is tagged, headed, buffered
 * durably and delivered exactly once, at the recipient's next idle moment (never inside a tool
 * loop). A recipient blocked in `ask_user` or a request gets it at once, in that call's result.
 */

export type MessageKind = "finding" | "status" | "request" | "reply" | "escalation"

export interface SendInput {
  /** The sender's session: a task's own, or the session the Oracle / the user is in. */
  sessionId: string
  /** Who speaks: the sending agent (`oracle` for the Oracle), or `user`. */
  from: string
  /** `user`: the person wrote it directly (/tell, nso tell); never claimed by an agent. */
  source: "agent" | "user"
  to: string
  text: string
  kind?: MessageKind
  replyTo?: string
  private?: boolean
}

export interface Sent {
  id: string
  /** Who it went to, for the sender: "builder (tsk_…)", "the Oracle", "3 members". */
  to: string
  outcome: "queued" | "handed to a waiting call" | "posted to the board" | "not sent"
  /** Why it was not sent, or what happens next. */
  note?: string
}

export type RequestOutcome = { kind: "reply"; text: string; from: string } | { kind: "timeout"; waitedMs: number } | { kind: "cancelled" } | { kind: "interrupted"; messages: string }

export interface MessengerPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  post(msg: Outgoing): Promise<Envelope>
  tasks: TaskManager
  /** Hands text to a task's waiting `ask_user` call; false when none waits. */
  interruptQuestion(taskId: string, text: string): boolean
  /** The audit log (messages.jsonl). */
  audit(record: Record<string, unknown>): void
}

interface Thread {
  hops: number
  from: string
  fromTaskId?: string
  to: string
}

interface RequestWaiter {
  taskId: string
  resolve(o: RequestOutcome): void
  timer?: ReturnType<Deps["timers"]["setTimeout"]>
}

export class Messenger {
  readonly guard: LoopGuard
  /** Recent messages by id: hops, sender and recipient, so a reply continues its thread. */
  private threads = new Map<string, Thread>()
  private requests = new Map<string, RequestWaiter>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "log">,
    private readonly opts: MessagingOptions,
    private readonly ports: MessengerPorts,
  ) {
    this.guard = new LoopGuard(opts, () => deps.clock.now())
  }

  private world(): World {
    return { tasks: this.ports.state.tasks, runs: this.ports.state.workflows }
  }

  private sender(sessionId: string): Sender {
    return { task: this.ports.tasks.bySessionId(sessionId), sessionId }
  }

  /** Sends one message; throws a TaskError the model can act on when it cannot be sent. */
  async send(input: SendInput): Promise<Sent> {
    const text = input.text.trim()
    if (!text) throw new TaskError("The message is empty: say what you want the other agent to know or do.")
    const from = this.sender(input.sessionId)
    const world = this.world()
    const workflow = senderWorkflow(world, from)
    const kind: MessageKind = input.kind ?? "finding"
    const parent = input.replyTo ? this.threads.get(input.replyTo) : undefined
    if (input.replyTo && !input.replyTo.startsWith("msg_")) throw new TaskError(`reply_to "${input.replyTo}" is not a message id (msg_…): use the id in the header of the message you answer.`)
    // A reply goes back to whoever asked, whatever `to` says.
    const to = kind === "reply" && parent && !input.to.trim() ? (parent.fromTaskId ?? parent.from) : input.to
    const target = resolve(world, from, to)
    const id = this.deps.ids.id(IdPrefix.message)
    const hops = parent ? parent.hops + 1 : 0
    const toName = target.kind === "task" ? target.task.agent : target.kind === "oracle" ? "oracle" : "*"
    const audit = (outcome: string, extra: Record<string, unknown> = {}) =>
      this.ports.audit({
        type: "message",
        time: this.deps.clock.now(),
        workflow,
        id,
        from: input.from,
        ...(from.task ? { fromTask: from.task.id } : {}),
        source: input.source,
        to: target.kind === "task" ? `${target.task.agent} (${target.task.id})` : toName,
        kind,
        hops,
        ...(input.replyTo ? { replyTo: input.replyTo } : {}),
        ...(input.private ? { private: true } : {}),
        outcome,
        text: text.slice(0, this.opts.auditTextChars),
        ...extra,
      })

    // The person and the Oracle steering work are not what loops; agents talking to agents are.
    if (from.task && input.source === "agent") {
      const v = this.guard.check({ workflow, from: from.task.id, to: target.kind === "task" ? target.task.id : toName, text, hops, reply: kind === "reply" })
      if (!v.ok) {
        audit(`dropped: ${v.reason}`)
        if (!v.trip)
          return {
            id,
            to: toName,
            outcome: "not sent",
            note: v.reason === "ack" ? "acknowledgement-only messages are not sent (each would cost the recipient a model turn); no need to acknowledge" : "you sent the same text to the same recipient moments ago",
          }
        if (v.first) await this.escalateLoop(from.task, toName, text, v.reason, hops)
        throw new TaskError(
          v.reason === "hops"
            ? `Not sent: this thread passed ${this.opts.maxHops} hops (loop guard). Stop messaging about it; finish your task with what you have, and say what is unresolved.`
            : v.reason === "rate"
              ? `Not sent: you sent ${toName} more than ${this.opts.pairLimit} messages in ${Math.round(this.opts.pairWindowMs / 1000)} s (loop guard). Stop messaging it; finish your task and report what is unresolved.`
              : `Not sent: this workflow used its budget of ${this.opts.workflowBudget} agent messages (loop guard). Finish your task without further messages.`,
        )
      }
    }
    this.threads.set(id, { hops, from: input.from, fromTaskId: from.task?.id, to: toName })
    if (this.threads.size > 10_000) this.threads.delete(this.threads.keys().next().value!)

    // The reply a request is waiting for goes straight into the waiting call.
    if (kind === "reply" && input.replyTo) {
      const w = this.requests.get(input.replyTo)
      if (w) {
        this.release(input.replyTo, { kind: "reply", text, from: input.from })
        audit("handed to the waiting request")
        return { id, to: toName, outcome: "handed to a waiting call" }
      }
    }

    const base = {
      source: input.source,
      from: input.from,
      kind: kind as Kind,
      hops,
      ...(from.task ? { taskId: from.task.id } : {}),
      ...(input.replyTo ? { replyTo: input.replyTo } : {}),
      ...(input.private ? { private: true } : {}),
    } as const

    if (target.kind === "all") {
      // An agent's broadcast is stored and shown, not pushed: a model turn per member burns
      // tokens and invites echoes. A request needs everyone to act; so does the person (or the
      // Oracle) steering a whole team run.
      if (kind !== "request" && from.task) {
        await this.post(workflow, { from: input.from, fromTaskId: from.task.id, kind: "broadcast", text })
        audit("posted to the board")
        return { id, to: `${target.tasks.length} member(s)`, outcome: "posted to the board", note: "they see it in their board digest at their next turn" }
      }
      if (!target.tasks.length) throw new TaskError("Nobody else runs in your workflow: there is no one to reach.")
      // Members that have not started have no session yet: they find it on the board when they start.
      const started = target.tasks.filter((t) => t.sessionId && t.status !== "queued")
      const later = target.tasks.length - started.length
      if (later) await this.post(workflow, { from: input.from, ...(from.task ? { fromTaskId: from.task.id } : {}), kind: "broadcast", text })
      let handed = 0
      for (const [i, t] of started.entries()) {
        const mid = i ? this.deps.ids.id(IdPrefix.message) : id
        if (i) this.threads.set(mid, { hops, from: input.from, fromTaskId: from.task?.id, to: t.agent })
        if (await this.deliver(t, { ...base, id: mid, to: t.agent, text })) handed++
      }
      audit(`${handed ? `queued; ${handed} handed to waiting calls` : "queued"}${later ? `; ${later} not started, on the board` : ""}`, { recipients: started.map((t) => t.id) })
      return { id, to: `${target.tasks.length} member(s)`, outcome: started.length ? "queued" : "posted to the board", ...(later ? { note: `${later} not started yet see it on the board when they start` } : {}) }
    }
    if (target.kind === "oracle") {
      await this.ports.post({ ...base, id, to: "oracle", text, toSessionId: target.sessionId })
      audit("queued")
      return { id, to: "the Oracle", outcome: "queued", note: "it reaches the user's session when the user pauses" }
    }
    const handed = await this.deliver(target.task, { ...base, id, to: target.task.agent, text })
    audit(handed ? "handed to its waiting call" : "queued")
    return { id, to: `${target.task.agent} (${target.task.id})`, outcome: handed ? "handed to a waiting call" : "queued" }
  }

  /**
   * Into a running task's session, or — when it waits in `ask_user` or a request — into that
   * waiting call. A task that has not started yet has no session to deliver to.
   */
  private async deliver(t: Task, m: { id: string; to: string; text: string; source: "agent" | "user"; from: string; kind: Kind; hops: number; taskId?: string; replyTo?: string; private?: boolean }): Promise<boolean> {
    const now = this.ports.tasks.get(t.id)!
    if (!now.sessionId || now.status === "queued")
      throw new TaskError(`Task ${t.id} (${t.agent}) has not started yet, so it cannot receive messages. Post it on the board (it will see the board when it starts), or send it later.`)
    if (now.status === "waiting_for_answer") {
      const text = `${header({ ...m, priority: "medium" })}\n${m.text}`
      if (this.ports.interruptQuestion(t.id, text) || this.interruptRequest(t.id, text)) return true
    }
    await this.ports.post({ ...m, toTaskId: t.id })
    return false
  }

  /**
   * Asks another agent and waits for its reply (the agent-to-agent `ask_user`): resolves with the
   * reply, or after `timeoutMs`, or when messages for the asker arrive first.
   */
  async request(input: Omit<SendInput, "kind">, timeoutMs: number, signal?: AbortSignal): Promise<{ sent: Sent; outcome: RequestOutcome }> {
    const asker = this.ports.tasks.bySessionId(input.sessionId)
    const sent = await this.send({ ...input, kind: "request" })
    if (sent.outcome === "not sent" || !asker) return { sent, outcome: { kind: "timeout", waitedMs: 0 } }
    await this.ports.tasks.setWaiting(asker.id, true)
    const onAbort = () => this.release(sent.id, { kind: "cancelled" })
    const outcome = await new Promise<RequestOutcome>((resolve) => {
      const w: RequestWaiter = { taskId: asker.id, resolve }
      w.timer = this.deps.timers.setTimeout(() => this.release(sent.id, { kind: "timeout", waitedMs: timeoutMs }), timeoutMs)
      this.requests.set(sent.id, w)
      signal?.addEventListener("abort", onAbort, { once: true })
    }).finally(() => signal?.removeEventListener("abort", onAbort))
    if (outcome.kind !== "cancelled") await this.ports.tasks.setWaiting(asker.id, false)
    return { sent, outcome }
  }

  private interruptRequest(taskId: string, text: string): boolean {
    for (const [id, w] of this.requests) if (w.taskId === taskId) return this.release(id, { kind: "interrupted", messages: text })
    return false
  }

  private release(id: string, o: RequestOutcome): boolean {
    const w = this.requests.get(id)
    if (!w) return false
    this.requests.delete(id)
    if (w.timer) this.deps.timers.clearTimeout(w.timer)
    w.resolve(o)
    return true
  }

  /** Hands a problem up: to the sender's coordinator, else to the user through the Oracle. */
  async escalate(sessionId: string, from: string, reason: string): Promise<Sent> {
    const sender = this.sender(sessionId)
    const lead = coordinatorOf(this.world(), sender.task)
    return this.send({ sessionId, from, source: "agent", to: lead ? lead.id : "oracle", text: reason, kind: "escalation" })
  }

  /** The loop guard tripped: whoever coordinates hears which agents looped and on what, once. */
  private async escalateLoop(task: Task, to: string, text: string, reason: "hops" | "rate" | "budget", hops: number): Promise<void> {
    const lead = coordinatorOf(this.world(), task)
    const what =
      reason === "hops"
        ? `a thread between ${task.agent} and ${to} passed ${this.opts.maxHops} hops (at ${hops})`
        : reason === "rate"
          ? `${task.agent} sent ${to} more than ${this.opts.pairLimit} messages within ${Math.round(this.opts.pairWindowMs / 1000)} s`
          : `the workflow used its budget of ${this.opts.workflowBudget} agent messages`
    const msg = `Loop guard: ${what}; their messages are no longer delivered. Last text: "${text.slice(0, 200)}". Decide how they should proceed (or cancel one of them).`
    try {
      if (lead?.sessionId && lead.status !== "queued") await this.ports.post({ source: "system", from: "nso", to: lead.agent, kind: "escalation", taskId: task.id, toTaskId: lead.id, text: msg })
      else await this.ports.post({ source: "system", from: "nso", to: "user", kind: "escalation", taskId: task.id, text: msg })
    } catch (err) {
      this.deps.log.log("warn", "could not escalate a loop", { error: String(err) })
    }
  }

  // ----- the board ----------------------------------------------------------------------------

  private async post(workflow: string, p: Omit<BoardPost, "id" | "time" | "workflow">): Promise<BoardPost> {
    const post: BoardPost = { id: this.deps.ids.id(IdPrefix.message), time: this.deps.clock.now(), workflow, ...p }
    await this.ports.write({ type: "board.posted", post })
    return post
  }

  /** Posts to the sender's workflow board. */
  async postToBoard(sessionId: string, from: string, text: string, kind: "finding" | "variable" | "decision" = "finding", key?: string): Promise<BoardPost> {
    if (!text.trim()) throw new TaskError("The post is empty: write the finding, variable (name = value) or decision.")
    const sender = this.sender(sessionId)
    const workflow = senderWorkflow(this.world(), sender)
    const m = kind === "finding" ? /^\s*([A-Za-z_][\w.-]{0,40})\s*=\s*(.+)$/s.exec(text) : null
    // "name = value" is a variable: a later post of the same name replaces it in the digest.
    const k = key ?? m?.[1]
    const post = await this.post(workflow, { from, fromTaskId: sender.task?.id, kind: k && kind === "finding" ? "variable" : kind, ...(k ? { key: k } : {}), text: text.trim() })
    this.ports.audit({ type: "board", time: post.time, workflow, id: post.id, from, kind: post.kind, ...(k ? { key: k } : {}), text: post.text.slice(0, this.opts.auditTextChars) })
    return post
  }

  /** The posts of a workflow, oldest first; variables only in their latest value. */
  board(workflow: string, filter?: string): BoardPost[] {
    const posts = this.ports.state.board.get(workflow) ?? []
    const latest = new Map<string, string>()
    for (const p of posts) if (p.key) latest.set(p.key, p.id)
    const f = filter?.trim().toLowerCase()
    return posts.filter((p) => (!p.key || latest.get(p.key) === p.id) && (!f || `${p.kind} ${p.from} ${p.key ?? ""} ${p.text}`.toLowerCase().includes(f)))
  }

  /** The board of the session's workflow. */
  boardFor(sessionId: string, filter?: string): { workflow: string; posts: BoardPost[] } {
    const workflow = senderWorkflow(this.world(), this.sender(sessionId))
    return { workflow, posts: this.board(workflow, filter) }
  }

  /**
   * What a background agent's prompt carries of its board: newest posts first that fit
   * `boardDigestChars`, shown oldest first. Empty when there is nothing (no bytes spent).
   */
  digest(sessionId: string): string | undefined {
    const task = this.ports.tasks.bySessionId(sessionId)
    if (!task || this.opts.boardDigestChars <= 0) return undefined
    const { workflow, posts } = this.boardFor(sessionId)
    if (!posts.length) return undefined
    const lines: string[] = []
    let used = 0
    for (let i = posts.length - 1; i >= 0; i--) {
      const p = posts[i]!
      const line = `- ${p.kind}${p.key ? ` ${p.key}` : ""} · ${p.from}: ${p.text.replace(/\s+/g, " ")}`
      if (used + line.length > this.opts.boardDigestChars) break
      lines.unshift(line)
      used += line.length + 1
    }
    if (!lines.length) return undefined
    const more = posts.length - lines.length
    return `Team board (${workflow}; read all with the board tool${more ? `, ${more} older post(s) not shown` : ""}):\n${lines.join("\n")}`
  }

  dispose(): void {
    for (const id of [...this.requests.keys()]) this.release(id, { kind: "cancelled" })
  }
}

