import type { Envelope, JournalEvent } from "../protocol.js"
import type { Drop, MessageBuffer, PushResult } from "./buffer.js"

/**
 * Makes any buffer durable: every accepted message and every drop is written to the journal.
 * Delivery itself is journaled by the delivery code (`delivery.started` / `confirmed`), since
 * only it knows whether the injection happened.
 */
export class JournaledBuffer implements MessageBuffer {
  private writes = new Set<Promise<void>>()
  private failure: unknown

  constructor(
    private readonly inner: MessageBuffer,
    private readonly write: (event: JournalEvent) => Promise<void>,
  ) {}

  get size(): number {
    return this.inner.size
  }
  has(id: string): boolean {
    return this.inner.has(id)
  }

  push(envelope: Envelope, now: number): PushResult {
    const known = this.inner.has(envelope.id)
    const r = this.inner.push(envelope, now)
    this.journalDrops(r.dropped)
    if (r.accepted && !known) this.track(this.write({ type: "message.buffered", envelope }))
    return r
  }

  /** Puts back messages read from the journal without writing them again. */
  restore(envelopes: Iterable<Envelope>, now: number): Drop[] {
    const dropped: Drop[] = []
    for (const e of envelopes) dropped.push(...this.inner.push(e, now).dropped)
    this.journalDrops(dropped)
    return dropped
  }

  expire(now: number): Drop[] {
    const d = this.inner.expire(now)
    this.journalDrops(d)
    return d
  }
  list(): Envelope[] {
    return this.inner.list()
  }
  remove(ids: Iterable<string>): Envelope[] {
    return this.inner.remove(ids)
  }
  drain(max?: number): Envelope[] {
    return this.inner.drain(max)
  }

  /** Resolves once every journal write so far is durable; rejects if one failed. */
  async durable(): Promise<void> {
    while (this.writes.size) await Promise.allSettled([...this.writes])
    if (this.failure) {
      const f = this.failure
      this.failure = undefined
      throw f
    }
  }

  private journalDrops(drops: Drop[]): void {
    for (const d of drops) this.track(this.write({ type: "message.dropped", id: d.envelope.id, reason: d.reason }))
  }

  private track(p: Promise<void>): void {
    const t = p.then(
      () => {
        this.writes.delete(t)
      },
      (err) => {
        this.failure = err
        this.writes.delete(t)
      },
    )
    this.writes.add(t)
  }
}
