import { PRIORITY_ORDER, UNDROPPABLE_KINDS, type Envelope, type Priority } from "../protocol.js"

/**
 * Holds agent messages until the delivery policy lets them through. Delivery order is highest
 * priority first (urgent > high > medium > low), first in first out within a priority.
 */
export interface MessageBuffer {
  readonly size: number
  /**
   * Adds a message. To stay within its bound the buffer may drop others, or this one; it never
   * drops a question, completion or failure (those may take it past the bound instead).
   */
  push(envelope: Envelope, now: number): PushResult
  /** Removes and reports every message whose `expiresAt` has passed. */
  expire(now: number): Drop[]
  /** Pending messages in delivery order. */
  list(): Envelope[]
  /** Removes the given ids; returns what was removed, in delivery order. */
  remove(ids: Iterable<string>): Envelope[]
  /** Removes and returns up to `max` messages in delivery order. */
  drain(max?: number): Envelope[]
  has(id: string): boolean
}

export interface Drop {
  envelope: Envelope
  reason: "expired" | "overflow"
}

export interface PushResult {
  /** False if the message itself was dropped (it was the least valuable one). */
  accepted: boolean
  dropped: Drop[]
}

export interface BufferOptions {
  /** Most messages held before dropping; questions, completions and failures are never dropped. Default 1000. */
  maxSize?: number
  /** Lifetime of a `low` message without its own `expiresAt`, in ms. Default 10 minutes. */
  lowTtlMs?: number
}

export function checkBufferOptions(opts: BufferOptions): Required<BufferOptions> {
  const maxSize = opts.maxSize ?? 1000
  const lowTtlMs = opts.lowTtlMs ?? 10 * 60_000
  if (!Number.isInteger(maxSize) || maxSize < 1)
    throw new TypeError(`Expected \`maxSize\` to be a positive integer, got \`${String(opts.maxSize)}\``)
  if (!Number.isFinite(lowTtlMs) || lowTtlMs <= 0)
    throw new TypeError(`Expected \`lowTtlMs\` to be a positive number of milliseconds, got \`${String(opts.lowTtlMs)}\``)
  return { maxSize, lowTtlMs }
}

const RANK: Record<Priority, number> = { urgent: 0, high: 1, medium: 2, low: 3 }
const droppable = (e: Envelope) => !UNDROPPABLE_KINDS.has(e.kind)
const expired = (e: Envelope, now: number) => e.expiresAt !== undefined && e.expiresAt <= now

/**
 * The buffer is full and nothing has expired: drop the least valuable held message (`victim`),
 * refuse the newcomer, or — when both must be kept — exceed the bound.
 */
function overflow(victim: Envelope | undefined, incoming: Envelope): "drop-victim" | "refuse" | "exceed" {
  if (victim && (RANK[victim.priority] >= RANK[incoming.priority] || !droppable(incoming))) return "drop-victim"
  return droppable(incoming) ? "refuse" : "exceed"
}

/** Applies the low-priority TTL to a message that has no expiry of its own. */
function withTtl(e: Envelope, lowTtlMs: number): Envelope {
  return e.priority === "low" && e.expiresAt === undefined ? { ...e, expiresAt: e.time + lowTtlMs } : e
}

/** A FIFO with O(1) push/shift and lazy removal. */
class Lane {
  items: (Envelope | undefined)[] = []
  head = 0
  live = 0

  push(e: Envelope): number {
    this.live++
    return this.items.push(e) - 1
  }
  shift(): Envelope | undefined {
    while (this.head < this.items.length) {
      const e = this.items[this.head]
      this.items[this.head++] = undefined
      if (e) {
        this.live--
        this.maybeCompact()
        return e
      }
    }
    return undefined
  }
  removeAt(i: number): void {
    if (this.items[i]) {
      this.items[i] = undefined
      this.live--
    }
  }
  *entries(): Generator<[number, Envelope]> {
    for (let i = this.head; i < this.items.length; i++) {
      const e = this.items[i]
      if (e) yield [i, e]
    }
  }
  private maybeCompact(): void {
    if (this.live === 0) {
      this.items = []
      this.head = 0
    } else if (this.head > 1024 && this.head > this.items.length / 2) {
      this.items = this.items.slice(this.head)
      this.head = 0
    }
  }
}

/**
 * The default buffer: one FIFO lane per priority and an id index. Push and drain are O(1) per
 * message; dropping on overflow scans only from the lowest lane up to the first droppable one.
 * The low-priority TTL is computed, not copied into the message, so a push allocates nothing.
 */
export class PriorityBuffer implements MessageBuffer {
  private lanes = PRIORITY_ORDER.map(() => new Lane())
  /** id → lane number */
  private index = new Map<string, number>()
  private readonly opts: Required<BufferOptions>

  constructor(opts: BufferOptions = {}) {
    this.opts = checkBufferOptions(opts)
  }

  get size(): number {
    return this.index.size
  }

  has(id: string): boolean {
    return this.index.has(id)
  }

  private expiresAt(e: Envelope): number | undefined {
    return e.expiresAt ?? (e.priority === "low" ? e.time + this.opts.lowTtlMs : undefined)
  }

  push(env: Envelope, now: number): PushResult {
    if (this.index.has(env.id)) return { accepted: true, dropped: [] }
    let dropped = NO_DROPS
    if (this.index.size >= this.opts.maxSize) {
      dropped = this.expire(now)
      if (this.index.size >= this.opts.maxSize) {
        const victim = this.victim()
        const what = overflow(victim, env)
        if (what === "refuse") return { accepted: false, dropped: [...dropped, { envelope: withTtl(env, this.opts.lowTtlMs), reason: "overflow" }] }
        if (what === "drop-victim") {
          this.remove([victim!.id])
          dropped.push({ envelope: victim!, reason: "overflow" })
        }
      }
    }
    const lane = RANK[env.priority]
    this.lanes[lane]!.push(env)
    this.index.set(env.id, lane)
    return { accepted: true, dropped }
  }

  /** The oldest droppable message of the lowest non-empty priority. */
  private victim(): Envelope | undefined {
    for (let l = this.lanes.length - 1; l >= 0; l--) {
      for (const [, e] of this.lanes[l]!.entries()) if (droppable(e)) return e
    }
    return undefined
  }

  expire(now: number): Drop[] {
    const out: Drop[] = []
    for (const lane of this.lanes) {
      for (const [i, e] of lane.entries()) {
        const at = this.expiresAt(e)
        if (at !== undefined && at <= now) {
          lane.removeAt(i)
          this.index.delete(e.id)
          out.push({ envelope: withTtl(e, this.opts.lowTtlMs), reason: "expired" })
        }
      }
    }
    return out
  }

  list(): Envelope[] {
    const out: Envelope[] = []
    for (const lane of this.lanes) for (const [, e] of lane.entries()) out.push(withTtl(e, this.opts.lowTtlMs))
    return out
  }

  remove(ids: Iterable<string>): Envelope[] {
    const want = new Set<string>()
    for (const id of ids) if (this.index.has(id)) want.add(id)
    const out: Envelope[] = []
    for (const lane of this.lanes) {
      if (!want.size) break
      for (const [i, e] of lane.entries()) {
        if (want.delete(e.id)) {
          lane.removeAt(i)
          this.index.delete(e.id)
          out.push(withTtl(e, this.opts.lowTtlMs))
        }
      }
    }
    return out
  }

  drain(max = Infinity): Envelope[] {
    const out: Envelope[] = []
    for (const lane of this.lanes) {
      while (out.length < max) {
        const e = lane.shift()
        if (!e) break
        out.push(e)
      }
    }
    if (out.length && !this.lanes.some((l) => l.live)) this.index.clear()
    else for (const e of out) this.index.delete(e.id)
    for (let i = 0; i < out.length; i++) if (out[i]!.priority === "low") out[i] = withTtl(out[i]!, this.opts.lowTtlMs)
    return out
  }
}

// Frozen: a caller that tries to add to the shared empty result fails loudly.
const NO_DROPS = Object.freeze([]) as unknown as Drop[]

/**
 * The simplest correct buffer: one array kept sorted by (priority, arrival). Slow on purpose; it
 * is the reference the contract suite checks the fast one against, and the bench's baseline.
 */
export class SortedArrayBuffer implements MessageBuffer {
  private items: { env: Envelope; n: number }[] = []
  private n = 0
  private readonly opts: Required<BufferOptions>

  constructor(opts: BufferOptions = {}) {
    this.opts = checkBufferOptions(opts)
  }

  get size(): number {
    return this.items.length
  }
  has(id: string): boolean {
    return this.items.some((i) => i.env.id === id)
  }

  push(envelope: Envelope, now: number): PushResult {
    if (this.has(envelope.id)) return { accepted: true, dropped: [] }
    const env = withTtl(envelope, this.opts.lowTtlMs)
    const dropped: Drop[] = []
    if (this.items.length >= this.opts.maxSize) {
      dropped.push(...this.expire(now))
      if (this.items.length >= this.opts.maxSize) {
        // Lowest priority first, then oldest.
        const candidates = this.items.filter((i) => droppable(i.env))
        candidates.sort((a, b) => RANK[b.env.priority] - RANK[a.env.priority] || a.n - b.n)
        const victim = candidates[0]?.env
        const what = overflow(victim, env)
        if (what === "refuse") return { accepted: false, dropped: [...dropped, { envelope: env, reason: "overflow" }] }
        if (what === "drop-victim") {
          this.remove([victim!.id])
          dropped.push({ envelope: victim!, reason: "overflow" })
        }
      }
    }
    this.items.push({ env, n: this.n++ })
    this.items.sort((a, b) => RANK[a.env.priority] - RANK[b.env.priority] || a.n - b.n)
    return { accepted: true, dropped }
  }

  expire(now: number): Drop[] {
    const gone = this.items.filter((i) => expired(i.env, now))
    this.items = this.items.filter((i) => !expired(i.env, now))
    return gone.map((i) => ({ envelope: i.env, reason: "expired" as const }))
  }
  list(): Envelope[] {
    return this.items.map((i) => i.env)
  }
  remove(ids: Iterable<string>): Envelope[] {
    const want = new Set(ids)
    const out = this.items.filter((i) => want.has(i.env.id)).map((i) => i.env)
    this.items = this.items.filter((i) => !want.has(i.env.id))
    return out
  }
  drain(max = Infinity): Envelope[] {
    return this.items.splice(0, Math.min(max, this.items.length)).map((i) => i.env)
  }
}
