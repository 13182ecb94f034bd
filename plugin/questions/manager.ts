import type { Deps, TimerHandle } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import { IdPrefix, TERMINAL_TASK_STATUSES, type Envelope, type JournalEvent, type Question, type Task } from "../protocol.js"
import { findQuestion, unanswerable } from "./lookup.js"
import type { Outgoing } from "../router/outbox.js"
import { TaskError, type TaskManager } from "../tasks/manager.js"
import { chooseOption, type Choice, type Synonyms } from "./choice.js"

/** Other words people use for the options of NSO's own questions. */
const NSO_SYNONYMS: Synonyms = {
  resume: ["continue", "go on", "carry on", "keep going", "proceed", "restart", "retry", "yes"],
  cancel: ["stop", "drop", "kill", "abort", "abandon", "discard"],
}

const describeNamed = (c: Choice) => (c.ok ? c.option : c.named.length ? `more than one (${c.named.join(" and ")})` : "none of them")

/**
 * Questions from background agents to the user. `ask` journals the question, puts it in the
 * buffer of the session the user talks in, and waits; `answer` (from the Oracle's tool, the
 * /answer command or `nso answer`) releases the waiting call. After a timeout the agent is told to
 * proceed on stated assumptions and the question stays open: a late answer is forwarded to the
 * agent's session as a message.
 */

export interface AskInput {
  sessionId: string
  question: string
  urgency?: "normal" | "urgent"
  options?: string[]
  timeoutMs?: number
}

/** What became of an answer, as a phrase that completes "The answer was …". */
export type Delivered = "passed to the waiting agent" | "sent to the agent's session (it had stopped waiting)" | "acted on by NSO" | "recorded, but its task had already ended"

export type AskOutcome =
  | { kind: "answered"; answer: string; by: string }
  | { kind: "timeout"; waitedMs: number }
  | { kind: "cancelled" }
  /** Messages for the waiting agent arrived: the call returns them; the question stays open. */
  | { kind: "interrupted"; messages: string }

export interface QuestionPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  /** Hands a message to the outbox, which decides its recipient and priority. */
  post(msg: Outgoing): Promise<Envelope>
  /** The session where this task's questions are delivered (decided by the outbox). */
  inboxOf(taskId: string): string
  /** The session the user talks in, at the top of this session's ancestry (for agents NSO did not start). */
  rootOf(sessionId: string): Promise<string | undefined>
  /** Drops a question's message from the buffer if it was not delivered yet. */
  withdraw(sessionId: string, questionId: string): Promise<void>
  tasks: TaskManager
  /**
   * Acts on the user's resume-or-cancel for an interrupted task (a team run decides for all its
   * members at once). Default: that one task.
   */
  decide?(taskId: string, choice: "resume" | "cancel"): Promise<void>
}

interface Waiter {
  resolve(o: AskOutcome): void
  timer?: TimerHandle
}

export class QuestionManager {
  private waiters = new Map<string, Waiter>()
  /** Questions whose answer this process has already passed on (from any source). */
  private routed = new Set<string>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "host" | "log">,
    private readonly defaultTimeoutMs: number,
    private readonly ports: QuestionPorts,
  ) {
    // A question whose task ended has nobody left to receive its answer: close it, so it is
    // not re-asked after a restart and an answer to it is refused instead of lost.
    ports.tasks.onEnded((t) => {
      for (const q of this.ports.state.questions.values()) {
        if (q.taskId !== t.id || q.status !== "open") continue
        this.release(q.id, { kind: "cancelled" })
        void this.close(q.id, `its task ${t.id} ended ${t.status}`).catch((err) => this.deps.log.log("warn", "could not close a question", { id: q.id, error: String(err) }))
      }
    })
  }

  /** Closes an open question nobody can answer any more, and drops it from the buffer. */
  async close(id: string, reason: string): Promise<void> {
    const q = this.get(id)
    if (!q || q.status !== "open") return
    await this.ports.write({ type: "question.closed", id, reason })
    if (q.taskId && this.ports.tasks.get(q.taskId)) await this.ports.withdraw(this.ports.inboxOf(q.taskId), id).catch(() => {})
  }

  /**
   * After a replay: open questions whose task is unknown (a lost or corrupt record) or already
   * ended can never be answered. Closes them and returns them, for the user to be told by id.
   */
  async closeOrphans(): Promise<Question[]> {
    const out: Question[] = []
    for (const q of this.open()) {
      // A question from an agent NSO did not start has no task: its session may still take a late answer.
      const reason = unanswerable(q, this.ports.state.tasks)
      if (!reason) continue
      await this.close(q.id, reason)
      out.push(this.get(q.id)!)
    }
    return out
  }

  /** The question a person means by a typed id (exact, without its underscore, or a prefix). */
  find(typed: string): Question {
    const r = findQuestion(this.ports.state.questions.values(), typed)
    if ("error" in r) throw new TaskError(r.error)
    return r.question
  }

  get(id: string): Question | undefined {
    return this.ports.state.questions.get(id)
  }

  open(): Question[] {
    return [...this.ports.state.questions.values()].filter((q) => q.status === "open")
  }

  /**
   * Asks on behalf of a background agent's session; resolves with the outcome. The session is
   * usually a delegated task's; an agent started another way (OpenCode's own sub-agent call,
   * `@builder`) asks too, through the session the user talks in. `onAsked` runs once the
   * question is recorded (to show its id while the call waits).
   */
  async ask(input: AskInput & { agent?: string }, signal?: AbortSignal, onAsked?: (q: Question) => void): Promise<{ question: Question; outcome: AskOutcome }> {
    const task = this.ports.tasks.bySessionId(input.sessionId)
    const inbox = task ? this.ports.inboxOf(task.id) : await this.ports.rootOf(input.sessionId)
    if (!inbox || inbox === input.sessionId)
      throw new TaskError("ask_user reaches the user from a background agent's session; this session is the one the user talks in, so ask the user directly in your reply.")
    const question: Question = {
      id: this.deps.ids.id(IdPrefix.question),
      taskId: task?.id,
      from: task?.agent ?? input.agent ?? "agent",
      sessionId: input.sessionId,
      text: input.question,
      urgency: input.urgency ?? "normal",
      options: input.options ?? [],
      askedAt: this.deps.clock.now(),
      status: "open",
    }
    await this.ports.write({ type: "question.asked", question })
    onAsked?.(question)
    // Waiting for the user gives the task's model slot back.
    if (task) await this.ports.tasks.setWaiting(task.id, true)
    const onAbort = () => this.release(question.id, { kind: "cancelled" })
    const outcome = new Promise<AskOutcome>((resolve) => {
      const timeoutMs = input.timeoutMs ?? this.defaultTimeoutMs
      const w: Waiter = { resolve }
      w.timer = this.deps.timers.setTimeout(() => this.release(question.id, { kind: "timeout", waitedMs: timeoutMs }), timeoutMs)
      this.waiters.set(question.id, w)
      signal?.addEventListener("abort", onAbort, { once: true })
    })
    await this.ports.post({
      source: "agent",
      from: question.from,
      // Without a task, the asker was started by a blocking call in the user's session: the
      // Oracle is waiting on it and cannot relay, so the question goes to the user, toasted.
      to: task ? "oracle" : "user",
      kind: "question",
      ...(question.urgency === "urgent" || !task ? { priority: "urgent" as const } : {}),
      ...(task ? { taskId: task.id } : { sessionId: inbox }),
      questionId: question.id,
      text: question.options.length ? `${question.text}\nOptions: ${question.options.join(" | ")}` : question.text,
    })
    const o = await outcome.finally(() => signal?.removeEventListener("abort", onAbort))
    // Either way the call stops waiting and the question stays open: a later answer is forwarded.
    if (o.kind === "timeout" || o.kind === "interrupted") await this.ports.write({ type: "question.timed_out", id: question.id })
    // The agent goes on only once its task has a model slot again.
    if (o.kind !== "cancelled" && task) await this.ports.tasks.setWaiting(task.id, false)
    return { question: this.get(question.id) ?? question, outcome: o }
  }

  /** A question NSO itself asks the user (e.g. what to do with a task a restart interrupted). */
  async askForTask(task: Task, text: string, options: string[]): Promise<Question> {
    const question: Question = {
      id: this.deps.ids.id(IdPrefix.question),
      taskId: task.id,
      from: "nso",
      sessionId: this.ports.inboxOf(task.id),
      text,
      urgency: "normal",
      options,
      askedAt: this.deps.clock.now(),
      status: "open",
    }
    await this.ports.write({ type: "question.asked", question })
    await this.postFromNso(question, task, text)
    return question
  }

  private async postFromNso(q: Question, task: Task, text: string): Promise<void> {
    await this.ports.post({
      source: "system",
      from: "nso",
      to: "oracle",
      kind: "question",
      taskId: task.id,
      questionId: q.id,
      text: q.options.length ? `${text}\nOptions: ${q.options.join(" | ")}` : text,
    })
  }

  /**
   * Records an answer and gets it to the asker: the waiting call if there is one, otherwise the
   * agent's session as a message. Returns how it was delivered.
   */
  async answer(typed: string, answer: string, by: string): Promise<{ question: Question; delivered: Delivered }> {
    const q = this.find(typed)
    const id = q.id
    if (q.status === "answered" || this.routed.has(id)) throw new TaskError(`Question ${id} was already answered (by ${q.answeredBy}: "${q.answer}"). Nothing to do.`)
    if (q.status === "closed") throw new TaskError(`Question ${id} is closed: ${q.closedReason ?? "nobody is waiting for it"}. Nobody can receive an answer; nothing was recorded.`)
    const gone = unanswerable(q, this.ports.state.tasks)
    if (gone) {
      await this.close(id, gone)
      throw new TaskError(`Question ${id} can no longer be answered: ${gone}. Nothing was recorded.`)
    }
    if (!answer.trim()) throw new TaskError("The answer is empty: pass the user's answer as text.")
    // NSO acts on its own questions itself, so it must understand the answer before accepting it.
    const choice = q.from === "nso" && q.options.length ? chooseOption(answer, q.options, NSO_SYNONYMS) : undefined
    if (choice && !choice.ok)
      throw new TaskError(`Question ${id} needs one of: ${q.options.join(", ")}. "${answer}" names ${describeNamed(choice)}. Answer again with one of those words; nothing was recorded.`)
    this.routed.add(id)
    await this.ports.write({ type: "question.answered", id, answer, by })
    return { question: this.get(id)!, delivered: await this.route(id, answer, by) }
  }

  /** An answer recorded by another process (the CLI) was read from the journal. */
  async answeredElsewhere(id: string): Promise<void> {
    const q = this.get(id)
    if (!q?.answer || this.routed.has(id)) return
    this.routed.add(id)
    await this.route(id, q.answer, q.answeredBy ?? "user")
  }

  private async route(id: string, answer: string, by: string): Promise<Delivered> {
    const q = this.get(id)!
    const inbox = q.taskId ? (this.ports.tasks.get(q.taskId) ? this.ports.inboxOf(q.taskId) : undefined) : await this.ports.rootOf(q.sessionId)
    if (inbox) await this.ports.withdraw(inbox, id).catch(() => {})
    if (q.from === "nso") {
      if (q.taskId) await this.onNsoAnswer(q, answer)
      return "acted on by NSO"
    }
    // The waiting call takes its slot back itself (see ask).
    if (this.release(id, { kind: "answered", answer, by })) return "passed to the waiting agent"
    const task = q.taskId ? this.ports.tasks.get(q.taskId) : undefined
    // Recorded by another process while its task ended: nobody left to tell.
    if (q.taskId && (!task || TERMINAL_TASK_STATUSES.has(task.status))) return "recorded, but its task had already ended"
    // Late: the asking call gave up (or died with a restart). Tell the agent in its session,
    // once its task has a model slot.
    if (task) await this.ports.tasks.setWaiting(task.id, false)
    await this.deps.host.prompt(q.sessionId, {
      agent: task?.agent ?? q.from,
      text: `[NSO · ${by} · question ${q.id} · answer]\nLate answer to your question "${q.text}": ${answer}`,
      meta: { source: "agent", from: by, kind: "answer", ids: [q.id, ...(task ? [task.id] : [])] },
    })
    return "sent to the agent's session (it had stopped waiting)"
  }

  private async onNsoAnswer(q: Question, answer: string): Promise<void> {
    const c = chooseOption(answer, q.options, NSO_SYNONYMS)
    // An answer recorded by another process was not checked here: when in doubt, keep the work.
    const choice = c.ok && c.option === "cancel" ? "cancel" : "resume"
    if (this.ports.decide) await this.ports.decide(q.taskId!, choice)
    else if (choice === "cancel") await this.ports.tasks.cancel(q.taskId!, "the user chose to cancel it after a restart")
    else await this.ports.tasks.resume(q.taskId!)
  }

  /**
   * Hands messages to the task's waiting `ask_user` call, if one waits: the call returns them at
   * once instead of after the answer. False when nothing of that task waits here.
   */
  interrupt(taskId: string, messages: string): boolean {
    const q = this.open().find((x) => x.taskId === taskId && this.waiters.has(x.id))
    return !!q && this.release(q.id, { kind: "interrupted", messages })
  }

  private release(id: string, o: AskOutcome): boolean {
    const w = this.waiters.get(id)
    if (!w) return false
    this.waiters.delete(id)
    if (w.timer) this.deps.timers.clearTimeout(w.timer)
    w.resolve(o)
    return true
  }

  dispose(): void {
    for (const id of [...this.waiters.keys()]) this.release(id, { kind: "cancelled" })
  }
}
