import type { Envelope, Kind } from "../protocol.js"

/**
 * The delivery policy: a pure function of what is pending, what the Oracle's session is doing,
 * and the time. It never touches the buffer or OpenCode; the Deliverer (delivery.ts) acts on its
 * decision and sets one timer for `wakeAt` (no polling).
 */

export interface SessionActivity {
  /** The session is generating (or has a prompt queued). */
  busy: boolean
  /** When the session last became idle; undefined if it never was busy. */
  idleSince?: number
  /** When the human last sent a message to this session. */
  lastUserMessageAt?: number
  /** Background tasks of this session still running (queued, running or waiting). */
  runningTasks: number
  /**
   * The session waits for all its tasks before it hears any result (a team's coordinator): what
   * arrives is held until none runs, then goes in as one batch.
   */
  gather?: boolean
  /**
   * A person reads this session (a root session). Background agents' sessions have nobody to
   * wait for: no pause, and every message but a result needs the agent to act (a model turn).
   * Default true.
   */
  human?: boolean
}

export interface PolicyOptions {
  /** How long the session must be idle and the user quiet before a batch goes in, in ms. */
  pauseMs: number
  /** A `high` message older than this is delivered at the next idle moment, in ms. */
  maxHoldMs: number
  /**
   * While other tasks still run, a batch that needs no reply waits until its oldest item is this
   * old, so results finishing close together go in as one message: each delivery costs OpenCode
   * a request, storage and events while it is busy running the other tasks (ms, default 0).
   */
  coalesceMs?: number
}

export interface DeliveryDecision {
  /** Messages to inject now, in delivery order; empty means wait. */
  deliver: Envelope[]
  /** Whether the injected batch should start a model turn (otherwise stored with noReply + toast). */
  reply: boolean
  /** Messages past their expiry: drop them, do not deliver. */
  expired: Envelope[]
  why: "busy" | "pause" | "urgent" | "waiting" | "empty"
  /** When to ask again if nothing else happens first (ms since epoch). */
  wakeAt?: number
}

const REPLY_KINDS: ReadonlySet<Kind> = new Set<Kind>(["question", "failure", "escalation", "request"])

/** Does this message need the Oracle to say something? */
export function needsReply(e: Envelope, runningTasks: number): boolean {
  if (REPLY_KINDS.has(e.kind)) return true
  // The last task finishing is the moment the user wants to hear about it.
  return e.kind === "completion" && runningTasks === 0
}

/** Messages that go in at the next idle moment without waiting for a pause. */
export function isDue(e: Envelope, now: number, opts: PolicyOptions): boolean {
  return e.priority === "urgent" || (e.priority === "high" && now - e.time >= opts.maxHoldMs)
}

export function decideDelivery(
  pending: readonly Envelope[],
  activity: SessionActivity,
  now: number,
  opts: PolicyOptions,
): DeliveryDecision {
  const expired: Envelope[] = []
  const live: Envelope[] = []
  for (const e of pending) (e.expiresAt !== undefined && e.expiresAt <= now ? expired : live).push(e)
  if (!live.length) return { deliver: [], reply: false, expired, why: "empty" }

  const nextExpiry = min(live.map((e) => e.expiresAt))
  // Never into a busy session, not even what is addressed to the user: a message arriving in the
  // middle of a turn ends OpenCode's tool loop early. Urgent items are toasted when they arrive.
  if (activity.busy) {
    // The next `idle` event wakes the runtime; only expiry needs a timer.
    return { deliver: [], reply: false, expired, why: "busy", wakeAt: nextExpiry }
  }
  // A coordinator gathers its members' results; anything else (an escalation, a message) goes in.
  if (activity.gather && activity.runningTasks > 0 && live.every((e) => e.kind === "completion" || e.kind === "failure"))
    return { deliver: [], reply: false, expired, why: "waiting", wakeAt: nextExpiry }

  const human = activity.human !== false
  const quietSince = Math.max(activity.idleSince ?? 0, activity.lastUserMessageAt ?? 0)
  const pauseAt = quietSince + (human ? opts.pauseMs : 0)
  const pick = (all: Envelope[], why: DeliveryDecision["why"]): DeliveryDecision => {
    const batch = activity.gather && activity.runningTasks > 0 ? all.filter((e) => e.kind !== "completion" && e.kind !== "failure") : all
    return { deliver: batch, reply: batch.some((e) => needsReply(e, activity.runningTasks) || (!human && e.kind !== "completion")), expired, why }
  }

  if (now >= pauseAt) {
    const batch = pick(live, "pause")
    const gatherUntil = Math.min(...live.map((e) => e.time)) + (opts.coalesceMs ?? 0)
    if (batch.reply || activity.runningTasks === 0 || now >= gatherUntil) return batch
    return { deliver: [], reply: false, expired, why: "waiting", wakeAt: min([gatherUntil, nextExpiry]) }
  }
  const due = live.filter((e) => isDue(e, now, opts))
  if (due.length) return pick(due, "urgent")

  const holdDeadlines = live.filter((e) => e.priority === "high").map((e) => e.time + opts.maxHoldMs)
  return {
    deliver: [],
    reply: false,
    expired,
    why: "waiting",
    wakeAt: min([pauseAt, nextExpiry, ...holdDeadlines]),
  }
}

function min(xs: (number | undefined)[]): number | undefined {
  let m: number | undefined
  for (const x of xs) if (x !== undefined && (m === undefined || x < m)) m = x
  return m
}
