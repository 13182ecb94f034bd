import type { MessagingOptions } from "../options.js"

/**
 * The loop guard: every agent message passes here before it is delivered. Pure bookkeeping over
 * the injected clock — no I/O — so it is cheap enough for every message (see the bench).
 *
 * - acknowledgement-only text ("ok", "thanks!", "got it") and the same text from the same sender
 *   to the same recipient within `repeatWindowMs` are dropped and counted, quietly: they start
 *   model turns and invite echo loops, and carry nothing;
 * - a thread past `maxHops` (each reply is one hop), a pair past `pairLimit` messages within
 *   `pairWindowMs`, or a workflow past `workflowBudget` messages trips the guard: the message is
 *   dropped and the caller escalates, once per pair and reason.
 */

export interface GuardInput {
  workflow: string
  from: string
  to: string
  text: string
  hops: number
}

export type Verdict =
  | { ok: true }
  | { ok: false; reason: "ack" | "repeat"; trip: false }
  | { ok: false; reason: "hops" | "rate" | "budget"; trip: true; /** First trip of this reason for this pair: escalate now. */ first: boolean }

type Reason = "ack" | "repeat" | "hops" | "rate" | "budget"

const ACK = /^(?:ok(?:ay)?|k|thanks?(?: you)?|thx|ty|got it|noted|ack(?:nowledged)?|understood|roger(?: that)?|sure|great|cool|perfect|sounds good|will do|👍|✅|🙏)[\s.!]*$/i

/** Text reduced for comparison: case, spacing and trailing punctuation do not make a message new. */
function normal(text: string): string {
  return text.trim().toLowerCase().replace(/\s+/g, " ").replace(/[.!?]+$/, "")
}

export class LoopGuard {
  /** Dropped messages by reason, since start. */
  readonly counts: Record<Reason, number> = { ack: 0, repeat: 0, hops: 0, rate: 0, budget: 0 }
  private pairs = new Map<string, number[]>()
  private recent = new Map<string, number>()
  private perWorkflow = new Map<string, number>()
  private tripped = new Set<string>()
  private sweepAt = 0

  constructor(
    private readonly opts: Pick<MessagingOptions, "maxHops" | "pairLimit" | "pairWindowMs" | "repeatWindowMs" | "workflowBudget">,
    private readonly now: () => number,
  ) {}

  check(m: GuardInput): Verdict {
    const now = this.now()
    if (now >= this.sweepAt) this.sweep(now)
    if (ACK.test(m.text.trim())) return this.drop("ack")
    const pair = `${m.workflow}\u0000${m.from}\u0000${m.to}`
    const key = `${pair}\u0000${normal(m.text)}`
    const seen = this.recent.get(key)
    if (seen !== undefined && now - seen < this.opts.repeatWindowMs) return this.drop("repeat")
    if (m.hops > this.opts.maxHops) return this.trip("hops", pair)
    const sent = this.perWorkflow.get(m.workflow) ?? 0
    if (sent >= this.opts.workflowBudget) return this.trip("budget", m.workflow)
    let times = this.pairs.get(pair)
    if (!times) this.pairs.set(pair, (times = []))
    while (times.length && now - times[0]! >= this.opts.pairWindowMs) times.shift()
    if (times.length >= this.opts.pairLimit) return this.trip("rate", pair)
    times.push(now)
    this.recent.set(key, now)
    this.perWorkflow.set(m.workflow, sent + 1)
    return { ok: true }
  }

  private drop(reason: "ack" | "repeat"): Verdict {
    this.counts[reason]++
    return { ok: false, reason, trip: false }
  }

  private trip(reason: "hops" | "rate" | "budget", scope: string): Verdict {
    this.counts[reason]++
    const key = `${reason}\u0000${scope}`
    const first = !this.tripped.has(key)
    this.tripped.add(key)
    return { ok: false, reason, trip: true, first }
  }

  /** Forgets what no window can see any more, so memory stays bounded by recent traffic. */
  private sweep(now: number): void {
    const horizon = Math.max(this.opts.repeatWindowMs, this.opts.pairWindowMs)
    this.sweepAt = now + horizon
    for (const [k, t] of this.recent) if (now - t >= this.opts.repeatWindowMs) this.recent.delete(k)
    for (const [k, times] of this.pairs) if (!times.length || now - times[times.length - 1]! >= this.opts.pairWindowMs) this.pairs.delete(k)
  }
}
