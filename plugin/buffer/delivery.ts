import type { Deps, TimerHandle } from "../deps.js"
import type { BufferOptions } from "../options.js"
import { IdPrefix, type Envelope, type InjectionMeta, type JournalEvent } from "../protocol.js"
import type { SessionRegistry } from "../session/registry.js"
import { PriorityBuffer } from "./buffer.js"
import { formatBatch, header } from "./format.js"
import { JournaledBuffer } from "./journaled.js"
import { decideDelivery } from "./policy.js"

export interface DeliveryPorts {
  /** Durable journal append. */
  write(event: JournalEvent): Promise<void>
  /** Background tasks of this session still running. */
  runningTasks(sessionId: string): number
  /** Whether this session hears its tasks' results only once all of them ended (see SessionActivity.gather). */
  gathers?(sessionId: string): boolean
  /** An injection went in; `reply`: it started a model turn. */
  delivered?(sessionId: string, reply: boolean): void
  /** Who a background task's session runs as: a delivery there must continue as that agent. */
  agentOf?(sessionId: string): { agent: string; delegates: boolean } | undefined
}

/**
 * Runs the delivery policy against real session activity: one buffer per receiving session, one
 * timer per session for the policy's next deadline, re-evaluated on every event that could
 * change the answer (a push, the session going idle, a user message). No polling.
 *
 * Exactly once: `delivery.started` is journaled before the injection and `delivery.confirmed`
 * after it. A batch left in doubt by a crash is settled on restart by looking for its ids in the
 * session's stored messages: found → confirmed, missing → pending again.
 */
export class Deliverer {
  private buffers = new Map<string, JournaledBuffer>()
  private timers = new Map<string, { at: number; handle: TimerHandle }>()
  private running = new Map<string, Promise<void>>()
  private again = new Set<string>()
  private inFlight = new Map<string, number>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers" | "ids" | "host" | "log">,
    private readonly opts: BufferOptions,
    private readonly registry: SessionRegistry,
    private readonly ports: DeliveryPorts,
  ) {}

  private buffer(sessionId: string): JournaledBuffer {
    let b = this.buffers.get(sessionId)
    if (!b) {
      b = new JournaledBuffer(new PriorityBuffer({ maxSize: this.opts.maxSize, lowTtlMs: this.opts.lowTtlMs }), this.ports.write)
      this.buffers.set(sessionId, b)
    }
    return b
  }

  /** Sessions that have messages waiting. */
  waitingSessions(): string[] {
    return [...this.buffers.entries()].filter(([, b]) => b.size > 0).map(([id]) => id)
  }

  pending(sessionId: string): Envelope[] {
    return this.buffers.get(sessionId)?.list() ?? []
  }

  /**
   * Buffers a message for its session; resolves once it is durable. Urgent ones are toasted now.
   * Delivery is evaluated at once, not after the write: its `delivery.started` record joins the
   * same group commit, and the journal writes batches in order, so the injection (which waits
   * for `delivery.started`) can never happen before the message itself is on disk.
   */
  async push(env: Envelope & { sessionId: string }): Promise<void> {
    const b = this.buffer(env.sessionId)
    const r = b.push(env, this.deps.clock.now())
    for (const d of r.dropped) this.deps.log.log("warn", "buffer dropped a message", { id: d.envelope.id, reason: d.reason })
    const durable = b.durable()
    if (env.priority === "urgent") void this.toast(`${header(env)} ${env.text.slice(0, 200)}`, "warning")
    this.poke(env.sessionId)
    await durable
  }

  /**
   * Puts back what the journal says is undelivered. Nothing is delivered yet: at plugin start
   * OpenCode is still loading us, so talking to it would wait for ourselves. `settle` follows.
   */
  load(pending: Iterable<Envelope>): void {
    const now = this.deps.clock.now()
    for (const env of pending) if (env.sessionId) this.buffer(env.sessionId).restore([env], now)
  }

  /** Settles batches a crash left in doubt, then starts delivering what waits. */
  async settle(inDoubt: Iterable<[string, { sessionId: string; ids: string[] }]>, inDoubtEnvelopes: ReadonlyMap<string, Envelope>): Promise<void> {
    const now = this.deps.clock.now()
    for (const [batchId, batch] of inDoubt) {
      const seen = await this.deps.host.injectedIds(batch.sessionId).catch(() => undefined)
      if (seen && batch.ids.every((id) => seen.has(id))) {
        await this.ports.write({ type: "delivery.confirmed", batchId })
      } else {
        // Read the envelopes first: journaling the failure folds them out of the in-doubt map.
        const envs = batch.ids.map((id) => inDoubtEnvelopes.get(id)).filter((e): e is Envelope => !!e)
        await this.ports.write({ type: "delivery.failed", batchId, reason: seen ? "not found in the session after restart" : "session unavailable after restart" })
        this.buffer(batch.sessionId).restore(envs, now)
      }
    }
    for (const id of this.buffers.keys()) this.poke(id)
  }

  /** Messages for this session not yet injected: pending, or in a batch being injected now. */
  holding(sessionId: string): number {
    return (this.buffers.get(sessionId)?.size ?? 0) + (this.inFlight.get(sessionId) ?? 0)
  }

  /** Drops everything undelivered for a session nobody will read (its task ended); returns what was dropped. */
  async dropAll(sessionId: string): Promise<Envelope[]> {
    const b = this.buffers.get(sessionId)
    if (!b) return []
    const gone = b.remove(b.list().map((e) => e.id))
    for (const e of gone) await this.ports.write({ type: "message.dropped", id: e.id, reason: "obsolete" })
    return gone
  }

  /** Drops undelivered messages about a question that no longer needs asking (it was answered). */
  async withdraw(sessionId: string, questionId: string): Promise<void> {
    const b = this.buffers.get(sessionId)
    if (!b) return
    const gone = b.remove(b.list().filter((e) => e.questionId === questionId).map((e) => e.id))
    for (const e of gone) await this.ports.write({ type: "message.dropped", id: e.id, reason: "obsolete" })
  }

  /** Re-evaluates a session now (coalesced: one evaluation at a time per session). */
  poke(sessionId: string): void {
    if (!this.buffers.get(sessionId)?.size) return
    if (this.running.has(sessionId)) {
      this.again.add(sessionId)
      return
    }
    const run = this.evaluate(sessionId)
      .catch((err) => this.deps.log.log("error", "delivery failed", { sessionId, error: String(err) }))
      .finally(() => {
        this.running.delete(sessionId)
        if (this.again.delete(sessionId)) this.poke(sessionId)
      })
    this.running.set(sessionId, run)
  }

  /** Resolves when no evaluation is in flight (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.running.size) await Promise.all([...this.running.values()])
  }

  dispose(): void {
    for (const t of this.timers.values()) this.deps.timers.clearTimeout(t.handle)
    this.timers.clear()
  }

  private async evaluate(sessionId: string): Promise<void> {
    const b = this.buffer(sessionId)
    const now = this.deps.clock.now()
    const activity = { ...this.registry.activity(sessionId, this.ports.runningTasks(sessionId)), gather: this.ports.gathers?.(sessionId) ?? false }
    const decision = decideDelivery(b.list(), activity, now, this.opts)
    if (decision.expired.length) {
      b.remove(decision.expired.map((e) => e.id))
      for (const e of decision.expired) await this.ports.write({ type: "message.dropped", id: e.id, reason: "expired" })
    }
    this.arm(sessionId, decision.wakeAt)
    if (!decision.deliver.length) return

    const batch = decision.deliver
    const batchId = this.deps.ids.id(IdPrefix.batch)
    const ids = batch.map((e) => e.id)
    // Counted from here: a task whose session is being handed messages is not done (holding()).
    this.inFlight.set(sessionId, (this.inFlight.get(sessionId) ?? 0) + batch.length)
    try {
      await this.inject(sessionId, b, batch, batchId, ids, decision.reply)
    } finally {
      const left = (this.inFlight.get(sessionId) ?? 0) - batch.length
      if (left > 0) this.inFlight.set(sessionId, left)
      else this.inFlight.delete(sessionId)
    }
  }

  private async inject(sessionId: string, b: JournaledBuffer, batch: Envelope[], batchId: string, ids: string[], reply: boolean): Promise<void> {
    const decision = { reply }
    await this.ports.write({ type: "delivery.started", batchId, sessionId, ids })
    b.remove(ids)
    const senders = [...new Set(batch.map((e) => e.from))]
    const meta: InjectionMeta = {
      source: batch.every((e) => e.source === "system") ? "system" : batch.every((e) => e.source === "user") ? "user" : "agent",
      from: senders.length === 1 ? senders[0]! : "nso",
      kind: batch.length === 1 ? batch[0]!.kind : undefined,
      ids: [...new Set(batch.flatMap((e) => [e.id, e.taskId, e.questionId].filter((x): x is string => !!x)))],
    }
    try {
      await this.deps.host.inject(sessionId, {
        text: formatBatch(batch, { maxInlineChars: this.opts.maxInlineChars }),
        meta: { ...meta, batchId },
        noReply: !decision.reply,
        ...this.ports.agentOf?.(sessionId),
      })
    } catch (err) {
      await this.ports.write({ type: "delivery.failed", batchId, reason: String(err) })
      b.restore(batch, this.deps.clock.now())
      this.deps.log.log("warn", "injection failed; will retry", { sessionId, error: String(err) })
      this.arm(sessionId, this.deps.clock.now() + 1_000)
      return
    }
    // A reply means a model turn has started; its idle event will come.
    if (decision.reply) this.registry.setBusy(sessionId, true)
    this.ports.delivered?.(sessionId, decision.reply)
    // Not awaited: the next batch need not wait for it. If it is lost in a crash, the batch is
    // in doubt and restart settles it by finding its ids in the session.
    this.ports.write({ type: "delivery.confirmed", batchId }).catch((err) => this.deps.log.log("warn", "could not journal a confirmed delivery", { batchId, error: String(err) }))
    if (!decision.reply) {
      const first = batch[0]!
      void this.toast(`${header(first)} ${first.text.slice(0, 160)}${batch.length > 1 ? ` (+${batch.length - 1} more)` : ""}`, "info")
    }
    if (b.size) this.again.add(sessionId)
  }

  private arm(sessionId: string, at: number | undefined): void {
    const cur = this.timers.get(sessionId)
    if (cur && (at === undefined || cur.at !== at)) {
      this.deps.timers.clearTimeout(cur.handle)
      this.timers.delete(sessionId)
    }
    if (at === undefined || this.timers.has(sessionId)) return
    const handle = this.deps.timers.setTimeout(() => {
      this.timers.delete(sessionId)
      this.poke(sessionId)
    }, Math.max(0, at - this.deps.clock.now()))
    this.timers.set(sessionId, { at, handle })
  }

  private toast(message: string, variant: "info" | "warning"): Promise<void> {
    return this.deps.host.toast(message, variant).catch(() => {})
  }
}
