import type { MessagingOptions } from "../options.js"

/**
 * The loop guard: every agent message passes here before it is delivered. Pure bookkeeping over
 * the injected clock — no I/O — and cheap enough for every message (see the bench): one string
 * key per message, texts compared by a one-pass hash.
 *
 * - acknowledgement-only text ("ok", "thanks!", "got it") and the same text from the same sender
 *   to the same recipient within `repeatWindowMs` are dropped and counted, quietly: they start
 *   model turns and invite echo loops, and carry nothing (a `reply` may be short: "Sure." answers
 *   a request, so replies are never taken for acknowledgements);
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
  /** A reply to a request: never an acknowledgement. */
  reply?: boolean
}

export type Verdict =
  | { ok: true }
  | { ok: false; reason: "ack" | "repeat"; trip: false }
  | { ok: false; reason: "hops" | "rate" | "budget"; trip: true; /** First trip of this reason for this pair: escalate now. */ first: boolean }

type Reason = "ack" | "repeat" | "hops" | "rate" | "budget"

const ACK = /^(?:ok(?:ay)?|k|thanks?(?: you)?|thx|ty|got it|noted|ack(?:nowledged)?|understood|roger(?: that)?|sure|great|cool|perfect|sounds good|will do|👍|✅|🙏)[\s.!]*$/i
/** Longer than any acknowledgement the pattern knows: not worth a regex. */
const ACK_MAX = 24

interface Pair {
  /** Send times within the window, oldest first (a ring would be no faster at these sizes). */
  times: number[]
  /** Text hash → when it was last sent. */
  recent: Map<number, number>
  last: number
}

/**
 * FNV-1a over the text with case, runs of white space and trailing punctuation folded away, so
 * "Done." and "done" are the same message.
 */
function textHash(s: string): number {
  let end = s.length
  while (end > 0) {
    const c = s.charCodeAt(end - 1)
    if (c === 32 || c === 9 || c === 10 || c === 13 || c === 46 || c === 33 || c === 63) end--
    else break
  }
  let h = 0x811c9dc5
  let space = true
  for (let i = 0; i < end; i++) {
    let c = s.charCodeAt(i)
    if (c === 32 || c === 9 || c === 10 || c === 13) {
      if (space) continue
      space = true
      c = 32
    } else {
      space = false
      if (c >= 65 && c <= 90) c += 32
    }
    h ^= c
    h = Math.imul(h, 0x01000193)
  }
  return h >>> 0
}

export class LoopGuard {
  /** Dropped messages by reason, since start. */
  readonly counts: Record<Reason, number> = { ack: 0, repeat: 0, hops: 0, rate: 0, budget: 0 }
  private pairs = new Map<string, Pair>()
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
    if (!m.reply && m.text.length <= ACK_MAX && ACK.test(m.text.trim())) return this.drop("ack")
    const key = `${m.workflow}\u0000${m.from}\u0000${m.to}`
    let pair = this.pairs.get(key)
    if (!pair) this.pairs.set(key, (pair = { times: [], recent: new Map(), last: now }))
    const h = textHash(m.text)
    const seen = pair.recent.get(h)
    if (seen !== undefined && now - seen < this.opts.repeatWindowMs) return this.drop("repeat")
    if (m.hops > this.opts.maxHops) return this.trip("hops", key)
    const sent = this.perWorkflow.get(m.workflow) ?? 0
    if (sent >= this.opts.workflowBudget) return this.trip("budget", m.workflow)
    const times = pair.times
    while (times.length && now - times[0]! >= this.opts.pairWindowMs) times.shift()
    if (times.length >= this.opts.pairLimit) return this.trip("rate", key)
    times.push(now)
    pair.recent.set(h, now)
    pair.last = now
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
    if (first) this.tripped.add(key)
    return { ok: false, reason, trip: true, first }
  }

  /** Forgets what no window can see any more, so memory stays bounded by recent traffic. */
  private sweep(now: number): void {
    const horizon = Math.max(this.opts.repeatWindowMs, this.opts.pairWindowMs)
    this.sweepAt = now + horizon
    for (const [k, p] of this.pairs) {
      if (now - p.last >= horizon) {
        this.pairs.delete(k)
        continue
      }
      for (const [h, t] of p.recent) if (now - t >= this.opts.repeatWindowMs) p.recent.delete(h)
    }
  }
}
