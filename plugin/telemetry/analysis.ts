import { keywordsOf } from "./keywords.js"
import type { Invocation, WorkflowComplete, WorkflowEvent } from "./schema.js"

/**
 * What the telemetry says: workflow success and duration, coordination overhead (time and
 * tokens), teams, an agent's trend and the best agent for a task, with the evidence.
 *
 * Everything here is a pure function over records already parsed (telemetry/read.ts streams them
 * from the files). Each analysis is a fold that sees every record once and keeps a bounded state,
 * so a million lines go through in one pass; `analyze` runs several folds over one pass. Nothing
 * reads the clock: "now" is passed in, and defaults to the time of the latest record.
 *
 * Rates are fractions (0..1), overheads percentages (as in the original telemetry design), times
 * seconds unless a name says otherwise.
 */

export type Source<T> = Iterable<T> | AsyncIterable<T>

/** Both logs, each in the order it was written (oldest first). */
export interface TelemetryInput {
  workflows: Source<WorkflowEvent>
  invocations: Source<Invocation>
}

const DAY_MS = 86_400_000

// ---------------------------------------------------------------------------------------------
// Small helpers

/**
 * Milliseconds of an ISO timestamp. The recorder's form (`toISOString`, with or without the
 * milliseconds) is read directly — `Date.parse` costs several times more and a million lines
 * carry two or three timestamps each; anything else goes to `Date.parse`. NaN when unreadable.
 */
export function isoMs(s: string): number {
  const n = s.length
  if ((n === 24 || n === 20) && s.charCodeAt(n - 1) === 90 && s.charCodeAt(4) === 45 && s.charCodeAt(7) === 45 && s.charCodeAt(10) === 84 && s.charCodeAt(13) === 58 && s.charCodeAt(16) === 58) {
    const y = num(s, 0, 4)
    const mo = num(s, 5, 7)
    const d = num(s, 8, 10)
    const h = num(s, 11, 13)
    const mi = num(s, 14, 16)
    const se = num(s, 17, 19)
    const ms = n === 24 && s.charCodeAt(19) === 46 ? num(s, 20, 23) : n === 20 ? 0 : -1
    if (y >= 0 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h <= 23 && mi <= 59 && se <= 59 && ms >= 0) return Date.UTC(y, mo - 1, d, h, mi, se, ms)
  }
  return Date.parse(s)
}

/** The decimal number in `s[from, to)`, or -1 if a character is not a digit. */
function num(s: string, from: number, to: number): number {
  let v = 0
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i) - 48
    if (c < 0 || c > 9) return -1
    v = v * 10 + c
  }
  return v
}

const rate = (ok: number, n: number): number | null => (n > 0 ? ok / n : null)
const avg = (sum: number, n: number): number | null => (n > 0 ? sum / n : null)
const pct = (part: number, whole: number): number | null => (whole > 0 ? (part / whole) * 100 : null)
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits

/**
 * A source may also hand its records out a batch at a time (the file reader does: one batch per
 * chunk read), which spares a promise per record.
 */
export interface Batched<T> {
  batches(): AsyncIterable<readonly T[]>
}

const BATCH = 4096

/** The records of a source in batches: one await per batch whatever the source is. */
async function* batchesOf<T>(src: Source<T>): AsyncGenerator<readonly T[]> {
  if (typeof (src as Partial<Batched<T>>).batches === "function") {
    yield* (src as unknown as Batched<T>).batches()
    return
  }
  if (Array.isArray(src)) {
    if (src.length) yield src as readonly T[]
    return
  }
  let batch: T[] = []
  if (Symbol.asyncIterator in src)
    for await (const x of src) {
      batch.push(x)
      if (batch.length === BATCH) yield batch.splice(0)
    }
  else
    for (const x of src) {
      batch.push(x)
      if (batch.length === BATCH) yield batch.splice(0)
    }
  if (batch.length) yield batch
}

async function each<T>(src: Source<T>, fn: (item: T) => void): Promise<void> {
  for await (const batch of batchesOf(src)) for (let k = 0; k < batch.length; k++) fn(batch[k]!)
}

// ---------------------------------------------------------------------------------------------
// Keywords

/**
 * The recorder's keywords (telemetry/keywords.ts), re-exported: the words a query is matched by
 * must come from the same function as the words stored in `keywords`.
 */
export { keywordsOf }

/**
 * An English plural as its singular, roughly, so that "APIs" finds "API" and "endpoints"
 * "endpoint": -ies → -y, -sses → -ss, else a final s goes unless the word ends in ss, us or
 * sis ("class", "status", "analysis"), is "redis", or is shorter than four letters. Applied when
 * matching, to both sides (stored keywords, the query, profiles), so a wrong singular
 * ("postgre") still matches itself and the files keep the words as written.
 */
export function singular(w: string): string {
  const n = w.length
  if (n < 4 || w.charCodeAt(n - 1) !== 115 /* s */) return w
  if (n > 4 && w.endsWith("ies")) return w.slice(0, -3) + "y"
  if (w.endsWith("sses")) return w.slice(0, -2)
  if (w.endsWith("ss") || w.endsWith("us") || w.endsWith("sis") || w === "redis") return w
  return w.slice(0, -1)
}

/** The words of `text` as matching compares them: `keywordsOf` (no limit), plurals folded, each once. */
export function termsOf(text: string, max = Infinity): string[] {
  return [...new Set(keywordsOf(text, max).map(singular))]
}

// ---------------------------------------------------------------------------------------------
// Workflows

export interface PatternCount {
  /** agents_executed joined with " → ". */
  pattern: string
  count: number
  successRate: number | null
}

export interface KindStats {
  total: number
  succeeded: number
  successRate: number | null
  avgDurationSeconds: number | null
}

export interface WorkflowStats {
  /** Workflows that completed (a `workflow_complete` line). */
  total: number
  succeeded: number
  successRate: number | null
  avgDurationSeconds: number | null
  avgAgentsPerWorkflow: number | null
  /** Started and not (yet) completed. */
  running: number
  byKind: { team: KindStats; task: KindStats }
  /** The most common agent sequences, most frequent first (one-agent workflows included, as in the original). */
  mostCommonPatterns: PatternCount[]
  /** The same among workflows of two agents or more (team runs), which one-agent tasks would crowd out. */
  mostCommonSequences: PatternCount[]
}

export class WorkflowFold {
  private total = 0
  private ok = 0
  private duration = 0
  private agents = 0
  private open = new Set<string>()
  private kinds = { team: { total: 0, ok: 0, duration: 0 }, task: { total: 0, ok: 0, duration: 0 } }
  private patterns = new Map<string, { count: number; ok: number; agents: number }>()

  constructor(private readonly topPatterns = 5) {}

  add(e: WorkflowEvent): void {
    if (e.event === "workflow_start") this.open.add(e.workflow_id)
    else if (e.event === "workflow_complete") {
      this.open.delete(e.workflow_id)
      this.total++
      if (e.success) this.ok++
      this.duration += e.duration_seconds
      this.agents += e.agents_executed.length
      const k = this.kinds[kindOf(e)]
      k.total++
      k.duration += e.duration_seconds
      if (e.success) k.ok++
      const pattern = e.agents_executed.join(" → ") || "(no agent)"
      const p = this.patterns.get(pattern) ?? { count: 0, ok: 0, agents: e.agents_executed.length }
      p.count++
      if (e.success) p.ok++
      this.patterns.set(pattern, p)
    }
  }

  result(): WorkflowStats {
    const kind = (k: { total: number; ok: number; duration: number }): KindStats => ({
      total: k.total,
      succeeded: k.ok,
      successRate: rate(k.ok, k.total),
      avgDurationSeconds: avg(k.duration, k.total),
    })
    return {
      total: this.total,
      succeeded: this.ok,
      successRate: rate(this.ok, this.total),
      avgDurationSeconds: avg(this.duration, this.total),
      avgAgentsPerWorkflow: avg(this.agents, this.total),
      running: this.open.size,
      byKind: { team: kind(this.kinds.team), task: kind(this.kinds.task) },
      mostCommonPatterns: this.top(() => true),
      mostCommonSequences: this.top((p) => p.agents >= 2),
    }
  }

  private top(which: (p: { agents: number }) => boolean): PatternCount[] {
    return [...this.patterns]
      .filter(([, p]) => which(p))
      .sort((a, b) => b[1].count - a[1].count || a[0].localeCompare(b[0]))
      .slice(0, this.topPatterns)
      .map(([pattern, p]) => ({ pattern, count: p.count, successRate: rate(p.ok, p.count) }))
  }
}

/** A workflow is a team run when it says so (or names a team); anything else is a one-agent task. */
function kindOf(e: { nso?: { kind: "team" | "task"; team?: string } }): "team" | "task" {
  return e.nso?.kind === "team" || (e.nso?.kind === undefined && e.nso?.team) ? "team" : "task"
}

// ---------------------------------------------------------------------------------------------
// Agents overall

export interface AgentSummary {
  agent: string
  tasks: number
  succeeded: number
  failed: number
  cancelled: number
  /** Succeeded / (tasks − cancelled): a task someone cancelled says nothing about its agent. */
  successRate: number | null
  avgDurationSeconds: number | null
  avgActiveSeconds: number | null
  tokens: number
  coordinationTokens: number
  cost: number
  lastAt: string
}

export interface AgentStats {
  invocations: number
  agents: AgentSummary[]
}

export class AgentFold {
  private n = 0
  private by = new Map<string, { tasks: number; ok: number; failed: number; cancelled: number; duration: number; active: number; tokens: number; coord: number; cost: number; lastMs: number; lastAt: string }>()

  add(r: Invocation, endMs = isoMs(r.ended_at)): void {
    this.n++
    let a = this.by.get(r.agent)
    if (!a) this.by.set(r.agent, (a = { tasks: 0, ok: 0, failed: 0, cancelled: 0, duration: 0, active: 0, tokens: 0, coord: 0, cost: 0, lastMs: -Infinity, lastAt: r.ended_at }))
    a.tasks++
    if (r.outcome === "cancelled") a.cancelled++
    else if (r.success) a.ok++
    else a.failed++
    a.duration += r.duration_seconds
    a.active += r.active_seconds
    a.tokens += workTokensOf(r)
    a.coord += r.coordination_tokens
    a.cost += r.cost
    if (endMs > a.lastMs) {
      a.lastMs = endMs
      a.lastAt = r.ended_at
    }
  }

  result(): AgentStats {
    return {
      invocations: this.n,
      agents: [...this.by]
        .map(([agent, a]) => ({
          agent,
          tasks: a.tasks,
          succeeded: a.ok,
          failed: a.failed,
          cancelled: a.cancelled,
          successRate: rate(a.ok, a.tasks - a.cancelled),
          avgDurationSeconds: avg(a.duration, a.tasks),
          avgActiveSeconds: avg(a.active, a.tasks),
          tokens: a.tokens,
          coordinationTokens: a.coord,
          cost: round(a.cost, 6),
          lastAt: a.lastAt,
        }))
        .sort((x, y) => y.tasks - x.tasks || x.agent.localeCompare(y.agent)),
    }
  }
}

/** Every token the task's model turns used (input, output, reasoning; cache reads are input already counted by the provider's cache). */
function workTokensOf(r: Invocation): number {
  return r.tokens.input + r.tokens.output + r.tokens.reasoning
}

// ---------------------------------------------------------------------------------------------
// Coordination overhead and teams (one fold: both need each workflow's agent intervals)

/** The original recommendation bands, on an overhead percentage. */
export type Band = "efficient" | "moderate" | "high"
export const BANDS: { band: Band; below: number; recommendation: string; meaning: string }[] = [
  { band: "efficient", below: 15, recommendation: "Stay Phase 1-2", meaning: "efficient coordination" },
  { band: "moderate", below: 30, recommendation: "Monitor overhead", meaning: "moderate coordination time" },
  { band: "high", below: Infinity, recommendation: "Consider Phase 3", meaning: "high coordination overhead" },
]

/** < 15 % efficient, 15–30 % moderate (30 included), > 30 % high. */
export function bandOf(overheadPct: number): { band: Band; recommendation: string; meaning: string } {
  const b = overheadPct < 15 ? BANDS[0]! : overheadPct <= 30 ? BANDS[1]! : BANDS[2]!
  return { band: b.band, recommendation: b.recommendation, meaning: b.meaning }
}

export interface OverheadFigure {
  /** Percent of the workflows' wall time; negative only for the original formula. */
  overheadPct: number | null
  avgCoordinationMinutes: number | null
  band: Band | null
  recommendation: string | null
}

export interface OverheadAggregate {
  workflows: number
  wallSeconds: number
  /** Time during which at least one agent worked (union of the active intervals), inside each workflow's window. */
  coveredSeconds: number
  /** Sum of every invocation's active seconds (overlapping agents count twice). */
  agentSeconds: number
  /** (wall − covered) / wall: the share of the time no agent worked. NSO's figure, never negative. */
  coverage: OverheadFigure
  /** (wall − Σ agent time) / wall, the original design's formula: goes negative when agents overlap. */
  original: OverheadFigure & { negativeWorkflows: number }
}

export interface TokenOverhead {
  /** input + output + reasoning of every turn of every task. */
  totalTokens: number
  /** Of those, turns NSO started to hand an agent messages (delivery turns: relays, results, status). */
  coordinationTokens: number
  workTokens: number
  coordinationPct: number | null
  turns: number
  deliveryTurns: number
}

export interface WorkflowOverhead {
  workflow_id: string
  kind: "team" | "task"
  team?: string
  success: boolean
  completed_at: string
  wallSeconds: number
  coveredSeconds: number
  agentSeconds: number
  /** Time at least two agents worked at once. */
  parallelSeconds: number
  invocations: number
  overheadPct: number
  originalOverheadPct: number
  coordinationTokens: number
  totalTokens: number
}

export interface OverheadStats extends OverheadAggregate {
  byKind: { team: OverheadAggregate; task: OverheadAggregate }
  tokens: TokenOverhead
  /** The latest completed workflows, oldest first (at most `keep`). */
  recent: WorkflowOverhead[]
  /** What was left out and why. */
  skipped: {
    /** Started, never completed (running, or its end was lost). */
    incomplete: number
    /** Completed, but no invocation line was seen for it. */
    withoutInvocations: number
    /** A duration of 0 s: no ratio. */
    zeroDuration: number
    /** Invocations of a workflow whose start and end were never seen. */
    unmatchedInvocations: number
    /** Records whose timestamps could not be read. */
    unreadableTimes: number
  }
}

export interface TeamSummary {
  team: string
  pattern?: string
  runs: number
  succeeded: number
  successRate: number | null
  avgDurationSeconds: number | null
  avgAgents: number | null
  /** Share of the runs' wall time during which at least two members worked at once (percent). */
  utilizationPct: number | null
  /** Coordination overhead of the team's runs (coverage formula, percent). */
  overheadPct: number | null
}

export interface TeamStats {
  teams: TeamSummary[]
}

/** One open workflow's bookkeeping. */
interface Open {
  id: string
  started: boolean
  /** Sorted disjoint intervals [a0, b0, a1, b1, …] in ms: some agent worked. */
  union: number[]
  /** The same for at least two agents at once (made when it happens). */
  double?: number[]
  agentSeconds: number
  invocations: number
  tokens: number
  coord: number
  turns: number
  deliveries: number
  lastMs: number
  complete?: WorkflowComplete
  endMs?: number
  /** Set when it is folded in. */
  covered?: number
  parallel?: number
}

/** How long after a workflow's completion line its invocations may still arrive (lines written slightly out of order). */
const GRACE_MS = 5 * 60_000
/** A workflow whose start was never seen is given up this long after its last invocation. */
const ORPHAN_MS = DAY_MS
/** A started workflow that never completes is given up this long after its last record. */
const STALE_MS = 7 * DAY_MS

/**
 * When an agent worked, inside its task: from `started_at` plus the queue wait (before it first
 * ran) for `active_seconds`. The task's answer waits (ask_user, a request) happen somewhere in
 * the middle and their position is not recorded, so they are placed at the end; the interval's
 * length is exactly the agent's active time, and overlaps between agents are approximate only
 * when an agent waited for an answer. Clipped to the task's own [started_at, ended_at].
 */
export function activeInterval(r: Invocation, startMs = isoMs(r.started_at), endMs = isoMs(r.ended_at)): [number, number] | undefined {
  if (!(startMs <= endMs)) return undefined
  const a = Math.min(endMs, startMs + r.waiting_seconds.queue * 1000)
  const b = Math.min(endMs, a + r.active_seconds * 1000)
  return [a, b]
}

/** Adds [a, b] to a sorted list of disjoint intervals, merging what touches. */
export function addInterval(list: number[], a: number, b: number): void {
  if (!(b > a)) return
  const n = list.length
  if (n === 0 || a > list[n - 1]!) {
    list.push(a, b)
    return
  }
  // Intervals mostly arrive in order: search from the end.
  let i = list.length
  while (i > 0 && list[i - 1]! >= a) i -= 2
  // list[i-1] (an end) < a: the new interval starts after interval i/2 - 1 ends. Merge forward.
  let lo = a
  let hi = b
  let j = i
  while (j < list.length && list[j]! <= hi) {
    lo = Math.min(lo, list[j]!)
    hi = Math.max(hi, list[j + 1]!)
    j += 2
  }
  list.splice(i, j - i, lo, hi)
}

/** Total length of `list` inside [a, b]. */
function lengthWithin(list: number[], a: number, b: number): number {
  let sum = 0
  for (let i = 0; i < list.length; i += 2) sum += Math.max(0, Math.min(b, list[i + 1]!) - Math.max(a, list[i]!))
  return sum
}

class Aggregate {
  n = 0
  wall = 0
  covered = 0
  agent = 0
  negative = 0

  add(wall: number, covered: number, agent: number): void {
    this.n++
    this.wall += wall
    this.covered += covered
    this.agent += agent
    if (agent > wall) this.negative++
  }

  result(): OverheadAggregate {
    const figure = (busy: number): OverheadFigure => {
      const p = pct(this.wall - busy, this.wall)
      const b = p === null ? undefined : bandOf(p)
      return {
        overheadPct: p === null ? null : round(p, 2),
        avgCoordinationMinutes: this.n ? round((this.wall - busy) / this.n / 60, 2) : null,
        band: b?.band ?? null,
        recommendation: b?.recommendation ?? null,
      }
    }
    return {
      workflows: this.n,
      wallSeconds: round(this.wall),
      coveredSeconds: round(this.covered),
      agentSeconds: round(this.agent),
      coverage: figure(this.covered),
      original: { ...figure(this.agent), negativeWorkflows: this.negative },
    }
  }
}

/**
 * Coordination overhead per workflow and overall, and team statistics. Reads workflow events and
 * invocations merged in time order (see `mergeByTime`): a workflow's state is kept from its first
 * record until shortly after its completion line, then folded into the totals, so memory follows
 * the number of workflows running at once, not the length of the history.
 *
 * The window of a workflow is [completion − duration_seconds, completion]; agents' intervals are
 * clipped to it.
 */
export class TimelineFold {
  private open = new Map<string, Open>()
  /** Completed workflows waiting out GRACE_MS, in completion order. */
  private closing: Open[] = []
  private closingHead = 0
  private all = new Aggregate()
  private kinds = { team: new Aggregate(), task: new Aggregate() }
  private tok = { total: 0, coord: 0, turns: 0, deliveries: 0 }
  /** The latest folded-in workflows (up to 2 × keep before trimming). */
  private recent: Open[] = []
  private teams = new Map<string, { pattern?: string; runs: number; ok: number; duration: number; agents: number; wall: number; double: number; covered: number; measured: number }>()
  private skipped = { incomplete: 0, withoutInvocations: 0, zeroDuration: 0, unmatchedInvocations: 0, unreadableTimes: 0 }
  private seen = 0
  private nowMs = -Infinity

  constructor(private readonly keep = 20) {}

  private get(id: string): Open {
    let o = this.open.get(id)
    if (!o) this.open.set(id, (o = { id, started: false, union: [], agentSeconds: 0, invocations: 0, tokens: 0, coord: 0, turns: 0, deliveries: 0, lastMs: -Infinity }))
    return o
  }

  /** `t`: the record's time (ms), as the merge computed it. */
  workflow(e: WorkflowEvent, t = isoMs(e.timestamp)): void {
    this.advance(t)
    if (Number.isNaN(t)) {
      this.skipped.unreadableTimes++
      return
    }
    if (e.event === "agent_handoff") return
    const o = this.get(e.workflow_id)
    o.lastMs = Math.max(o.lastMs, t)
    if (e.event === "workflow_start") o.started = true
    else if (!o.complete) {
      o.complete = e
      o.endMs = t
      this.closing.push(o)
    }
  }

  invocation(r: Invocation, t = isoMs(r.timestamp), startMs = isoMs(r.started_at), endMs = isoMs(r.ended_at)): void {
    this.advance(t)
    if (!(startMs <= endMs)) {
      this.skipped.unreadableTimes++
      return
    }
    // A line arriving after its workflow was folded in opens an entry of its own, never completed:
    // it ends up among the unmatched invocations.
    const o = this.get(r.workflow_id)
    o.lastMs = Math.max(o.lastMs, Number.isNaN(t) ? endMs : t)
    o.invocations++
    o.agentSeconds += r.active_seconds
    o.tokens += workTokensOf(r)
    o.coord += r.coordination_tokens
    o.turns += r.turns
    o.deliveries += r.delivery_turns
    // As activeInterval, inline (no array per line).
    const a = Math.min(endMs, startMs + r.waiting_seconds.queue * 1000)
    const b = Math.min(endMs, a + r.active_seconds * 1000)
    if (b > a) {
      // Time at least two agents worked grows by the part of [a, b] some agent already covered.
      const u = o.union
      for (let k = 0; k < u.length; k += 2) {
        const lo = Math.max(a, u[k]!)
        const hi = Math.min(b, u[k + 1]!)
        if (hi > lo) addInterval((o.double ??= []), lo, hi)
      }
      addInterval(u, a, b)
    }
  }

  /** Stream time moved to `t`: fold in workflows whose grace ended, now and then give up on stale ones. */
  private advance(t: number): void {
    if (!(t > this.nowMs)) return
    this.nowMs = t
    while (this.closingHead < this.closing.length && this.closing[this.closingHead]!.endMs! + GRACE_MS < t) this.finish(this.closing[this.closingHead++]!)
    if (this.closingHead > 1024 && this.closingHead * 2 > this.closing.length) {
      this.closing = this.closing.slice(this.closingHead)
      this.closingHead = 0
    }
    if (++this.seen % 4096 === 0) {
      for (const o of this.open.values()) {
        if (o.complete) continue
        const idle = t - o.lastMs
        if (o.started ? idle > STALE_MS : idle > ORPHAN_MS) this.drop(o)
      }
    }
  }

  private drop(o: Open): void {
    this.open.delete(o.id)
    if (o.started) this.skipped.incomplete++
    else this.skipped.unmatchedInvocations += o.invocations
  }

  private finish(o: Open): void {
    if (this.open.get(o.id) === o) this.open.delete(o.id)
    const c = o.complete!
    const kind = kindOf(c)
    const wall = c.duration_seconds
    const endMs = o.endMs!
    const startMs = endMs - wall * 1000
    if (kind === "team") {
      const name = c.nso?.team ?? "(unnamed team)"
      let tm = this.teams.get(name)
      if (!tm) this.teams.set(name, (tm = { runs: 0, ok: 0, duration: 0, agents: 0, wall: 0, double: 0, covered: 0, measured: 0 }))
      if (c.nso?.pattern) tm.pattern = c.nso.pattern
      tm.runs++
      if (c.success) tm.ok++
      tm.duration += wall
      tm.agents += c.agents_executed.length
      if (o.invocations && wall > 0) {
        tm.measured++
        tm.wall += wall
        tm.double += o.double ? lengthWithin(o.double, startMs, endMs) / 1000 : 0
        tm.covered += lengthWithin(o.union, startMs, endMs) / 1000
      }
    }
    if (!o.invocations) {
      this.skipped.withoutInvocations++
      return
    }
    this.tok.total += o.tokens
    this.tok.coord += o.coord
    this.tok.turns += o.turns
    this.tok.deliveries += o.deliveries
    if (!(wall > 0)) {
      this.skipped.zeroDuration++
      return
    }
    const covered = lengthWithin(o.union, startMs, endMs) / 1000
    this.all.add(wall, covered, o.agentSeconds)
    this.kinds[kind].add(wall, covered, o.agentSeconds)
    if (this.keep > 0) {
      o.covered = covered
      o.parallel = o.double ? lengthWithin(o.double, startMs, endMs) / 1000 : 0
      this.recent.push(o)
      if (this.recent.length >= this.keep * 2) this.recent.splice(0, this.recent.length - this.keep)
    }
  }

  private row(o: Open): WorkflowOverhead {
    const c = o.complete!
    const wall = c.duration_seconds
    const covered = o.covered!
    return {
      workflow_id: o.id,
      kind: kindOf(c),
      ...(c.nso?.team ? { team: c.nso.team } : {}),
      success: c.success,
      completed_at: c.timestamp,
      wallSeconds: wall,
      coveredSeconds: round(covered),
      agentSeconds: round(o.agentSeconds),
      parallelSeconds: round(o.parallel!),
      invocations: o.invocations,
      overheadPct: round(((wall - covered) / wall) * 100, 2),
      originalOverheadPct: round(((wall - o.agentSeconds) / wall) * 100, 2),
      coordinationTokens: o.coord,
      totalTokens: o.tokens,
    }
  }

  private flush(): void {
    while (this.closingHead < this.closing.length) this.finish(this.closing[this.closingHead++]!)
    this.closing = []
    this.closingHead = 0
    for (const o of [...this.open.values()]) this.drop(o)
  }

  overhead(): OverheadStats {
    this.flush()
    return {
      ...this.all.result(),
      byKind: { team: this.kinds.team.result(), task: this.kinds.task.result() },
      tokens: {
        totalTokens: this.tok.total,
        coordinationTokens: this.tok.coord,
        workTokens: Math.max(0, this.tok.total - this.tok.coord),
        coordinationPct: pct(this.tok.coord, this.tok.total) === null ? null : round(pct(this.tok.coord, this.tok.total)!, 2),
        turns: this.tok.turns,
        deliveryTurns: this.tok.deliveries,
      },
      recent: this.recent
        .slice(-this.keep)
        .sort((a, b) => a.endMs! - b.endMs!)
        .map((o) => this.row(o)),
      skipped: { ...this.skipped },
    }
  }

  teamStats(): TeamStats {
    this.flush()
    return {
      teams: [...this.teams]
        .map(([team, t]) => ({
          team,
          ...(t.pattern ? { pattern: t.pattern } : {}),
          runs: t.runs,
          succeeded: t.ok,
          successRate: rate(t.ok, t.runs),
          avgDurationSeconds: avg(t.duration, t.runs),
          avgAgents: avg(t.agents, t.runs),
          utilizationPct: t.measured ? round(pct(t.double, t.wall)!, 2) : null,
          overheadPct: t.measured ? round(pct(t.wall - t.covered, t.wall)!, 2) : null,
        }))
        .sort((a, b) => b.runs - a.runs || a.team.localeCompare(b.team)),
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Trends

export type TrendWord = "improving" | "stable" | "declining" | "not enough data"

export interface WindowStats {
  tasks: number
  succeeded: number
  successRate: number | null
  avgDurationSeconds: number | null
}

export interface Trend {
  agent: string
  days: number
  now: string
  trend: TrendWord
  /** The last 7 days. */
  recent: WindowStats
  /** The days before that, back to `days` ago. */
  prior: WindowStats
  /** recent − prior success rate, in percentage points. */
  changePoints: number | null
  /** Why "not enough data", or how the word was chosen. */
  reason: string
}

/** Below this many tasks (cancelled ones not counted) in either window there is no trend. */
export const TREND_MIN_TASKS = 3
/** A change of at least this many points is a trend; less is stable. */
export const TREND_POINTS = 10
export const RECENT_DAYS = 7

interface Win {
  n: number
  ok: number
  duration: number
}

/** Success in the last 7 days against the days before, per agent; cancelled tasks are left out. */
export class TrendFold {
  private by = new Map<string, { recent: Win; prior: Win }>()
  private readonly recentFrom: number
  private readonly priorFrom: number

  constructor(
    readonly now: number,
    readonly days = 30,
    private readonly only?: string,
  ) {
    this.recentFrom = now - RECENT_DAYS * DAY_MS
    this.priorFrom = now - days * DAY_MS
  }

  add(r: Invocation, endMs = isoMs(r.ended_at)): void {
    if (r.outcome === "cancelled" || (this.only !== undefined && r.agent !== this.only)) return
    if (!(endMs <= this.now) || !(endMs > this.priorFrom)) return
    let a = this.by.get(r.agent)
    if (!a) this.by.set(r.agent, (a = { recent: { n: 0, ok: 0, duration: 0 }, prior: { n: 0, ok: 0, duration: 0 } }))
    const w = endMs > this.recentFrom ? a.recent : a.prior
    w.n++
    if (r.success) w.ok++
    w.duration += r.duration_seconds
  }

  result(agent: string): Trend {
    const a = this.by.get(agent) ?? { recent: { n: 0, ok: 0, duration: 0 }, prior: { n: 0, ok: 0, duration: 0 } }
    const win = (w: Win): WindowStats => ({ tasks: w.n, succeeded: w.ok, successRate: rate(w.ok, w.n), avgDurationSeconds: avg(w.duration, w.n) })
    const recent = win(a.recent)
    const prior = win(a.prior)
    const base = { agent, days: this.days, now: new Date(this.now).toISOString(), recent, prior }
    if (this.days <= RECENT_DAYS) return { ...base, trend: "not enough data", changePoints: null, reason: `the window must be longer than the last ${RECENT_DAYS} days it compares` }
    if (a.recent.n < TREND_MIN_TASKS || a.prior.n < TREND_MIN_TASKS)
      return {
        ...base,
        trend: "not enough data",
        changePoints: recent.successRate !== null && prior.successRate !== null ? round((recent.successRate - prior.successRate) * 100, 1) : null,
        reason: `needs at least ${TREND_MIN_TASKS} finished tasks in each window (last ${RECENT_DAYS} days: ${a.recent.n}, the ${this.days - RECENT_DAYS} days before: ${a.prior.n})`,
      }
    const change = round((recent.successRate! - prior.successRate!) * 100, 1)
    const trend: TrendWord = change >= TREND_POINTS ? "improving" : change <= -TREND_POINTS ? "declining" : "stable"
    return { ...base, trend, changePoints: change, reason: `a change of ${TREND_POINTS} points or more either way is a trend` }
  }
}

// ---------------------------------------------------------------------------------------------
// Best agent

/** What the analysis needs of an agent profile. */
export interface ProfileInfo {
  name: string
  specialization?: string
  tags?: readonly string[]
  description?: string
}

export interface BestAgentQuery {
  task: string
  domain?: string
  /** Rank every candidate instead of answering with the best. */
  all?: boolean
  /** Default 0.5. */
  minConfidence?: number
}

export interface Candidate {
  agent: string
  confidence: number
  qualifies: boolean
  /** On the matching past tasks (cancelled ones left out); null without any. */
  successRate: number | null
  /** The same, recency-weighted (half-life 14 days) and smoothed toward 0.5: what the confidence uses. */
  weightedSuccessRate: number
  avgDurationSeconds: number | null
  /** Matching past tasks. */
  experience: number
  /** Every past task of this agent. */
  totalTasks: number
  trend: TrendWord
  fit: { history: number; profile: number; domain: boolean | null }
  evidence: {
    /** Query words found in its past tasks, with how many of them and how they went. */
    keywords: { keyword: string; tasks: number; succeeded: number }[]
    /** Query words its profile (specialization, tags, description) or its tasks' tags and domain carry. */
    profileWords: string[]
    /** The latest matching past tasks. */
    tasks: { task_id: string; task_digest: string; ended_at: string; outcome: string; matched: string[] }[]
  }
}

export interface BestAgentResult {
  /** keywords: the task's words (matched); domainWords: the domain's other words (only checked). */
  query: { task: string; domain?: string; keywords: string[]; domainWords: string[]; unknownWords: string[]; minConfidence: number; now: string }
  /** The recommendation, or null when nothing qualifies. */
  best: Candidate | null
  /** With `all`: every candidate ranked; otherwise the best (if any). */
  candidates: Candidate[]
  /** Without a recommendation: what to do, and the nearest candidates below the bar. */
  message?: string
  nearest?: Candidate[]
  tasksSeen: number
}

function sameWords(a: readonly string[], b: readonly string[] | undefined): boolean {
  if (!b || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

export const NO_SUITABLE_AGENT = "no suitable agent — consider creating a specialist"
/** Weight of a past task halves every this many days. */
export const HALF_LIFE_DAYS = 14
const EVIDENCE_TASKS = 5

interface AgentEvidence {
  total: number
  matched: number
  ok: number
  wSum: number
  wOk: number
  duration: number
  words: Map<string, { tasks: number; ok: number }>
  /** Words of its tasks' tags and domains (a profile the history carries). */
  carried: Set<string>
  /** How many distinct tags/domain it carried were read (at most 32). */
  carriedFrom: number
  lastDomain?: string
  lastTags?: readonly string[]
  /** A past task of it had a domain word among its keywords. */
  domainInTasks: boolean
  latest: { endMs: number; task: Candidate["evidence"]["tasks"][number] }[]
}

/**
 * The best agent for a task, from what agents did before and what their profiles say.
 *
 * - Query words: `keywordsOf(task)`, as the recorder makes `keywords`. A past task matches when
 *   its `keywords` share a word with them, plurals folded (`singular`). The domain's words only
 *   check the domain (below).
 * - Words are weighted by rarity (1 + ln((N + 1) / (tasks with the word + 1)), N = all tasks):
 *   "api" says more than "code". Words no past task and no profile knows are left out (shown as
 *   `unknownWords`): they cannot tell agents apart.
 * - Fit: the weighted share of the known query words the agent covers, in its matching tasks'
 *   keywords (history) or in its profile's specialization, tags and description or the tags and
 *   domain its tasks carried (profile); both shares are reported. With a domain that nothing of
 *   the agent mentions (profile, carried tags and domain, past tasks' keywords), fit is halved.
 * - Success: its matching tasks' success, each weighted by recency (half-life 14 days),
 *   smoothed toward 0.5 as if there were one success and one failure more; cancelled tasks left out.
 * - Experience: e = n / (n + 3), n matching tasks.
 * - confidence = √fit × success × (0.4 + 0.6 e). A profile that fits but never ran stays at 0.2
 *   at most: it is listed (with `all`), not recommended.
 */
export class BestAgentFold {
  private readonly words: string[]
  /** The domain's words that are not task words too. */
  private readonly domainWords: string[]
  private readonly domainAll: string[]
  private readonly want: Set<string>
  private readonly wantDomain: Set<string>
  private readonly df = new Map<string, number>()
  private readonly by = new Map<string, AgentEvidence>()
  private readonly trends: TrendFold
  private n = 0

  constructor(
    readonly query: BestAgentQuery,
    private readonly profiles: readonly ProfileInfo[],
    readonly now: number,
  ) {
    this.words = termsOf(query.task, 12)
    this.domainAll = query.domain ? termsOf(query.domain) : []
    this.domainWords = this.domainAll.filter((w) => !this.words.includes(w))
    this.want = new Set(this.words)
    this.wantDomain = new Set(this.domainWords)
    this.trends = new TrendFold(now, 30)
  }

  private agent(name: string): AgentEvidence {
    let a = this.by.get(name)
    if (!a) this.by.set(name, (a = { total: 0, matched: 0, ok: 0, wSum: 0, wOk: 0, duration: 0, words: new Map(), carried: new Set(), carriedFrom: 0, domainInTasks: false, latest: [] }))
    return a
  }

  add(r: Invocation, endMs = isoMs(r.ended_at)): void {
    this.n++
    this.trends.add(r, endMs)
    const a = this.agent(r.agent)
    a.total++
    // The profile its tasks carried: read again only when it differs from the last one seen.
    if ((r.domain !== a.lastDomain || !sameWords(r.tags, a.lastTags)) && a.carriedFrom < 32) {
      a.lastDomain = r.domain
      a.lastTags = r.tags
      a.carriedFrom++
      for (const w of termsOf(`${r.domain ?? ""} ${r.tags.join(" ")}`)) a.carried.add(w)
    }
    let matched: string[] | undefined
    for (let k = 0; k < r.keywords.length; k++) {
      const w = singular(r.keywords[k]!)
      if (this.want.has(w)) {
        ;(matched ??= []).push(w)
        this.df.set(w, (this.df.get(w) ?? 0) + 1)
      } else if (this.wantDomain.has(w)) a.domainInTasks = true
    }
    if (!matched) return
    const counts = r.outcome !== "cancelled"
    for (const k of matched) {
      const s = a.words.get(k) ?? { tasks: 0, ok: 0 }
      s.tasks++
      if (r.success) s.ok++
      a.words.set(k, s)
    }
    if (counts) {
      a.matched++
      if (r.success) a.ok++
      a.duration += r.duration_seconds
      const w = endMs >= this.now ? 1 : 0.5 ** ((this.now - endMs) / DAY_MS / HALF_LIFE_DAYS)
      a.wSum += w
      if (r.success) a.wOk += w
    }
    if (a.latest.length < EVIDENCE_TASKS || endMs > a.latest[a.latest.length - 1]!.endMs) {
      const item = { endMs, task: { task_id: r.task_id, task_digest: r.task_digest, ended_at: r.ended_at, outcome: r.outcome, matched } }
      let i = a.latest.length
      while (i > 0 && a.latest[i - 1]!.endMs < endMs) i--
      a.latest.splice(i, 0, item)
      if (a.latest.length > EVIDENCE_TASKS) a.latest.pop()
    }
  }

  result(): BestAgentResult {
    const minConfidence = this.query.minConfidence ?? 0.5
    const profileWords = new Map<string, Set<string>>()
    for (const p of this.profiles) profileWords.set(p.name, new Set(termsOf(`${p.specialization ?? ""} ${(p.tags ?? []).join(" ")} ${p.description ?? ""}`)))
    const ownWords = (agent: string): Set<string> => {
      const s = new Set(profileWords.get(agent) ?? [])
      for (const w of this.by.get(agent)?.carried ?? []) s.add(w)
      return s
    }
    const names = [...new Set([...this.profiles.map((p) => p.name), ...this.by.keys()])]
    const own = new Map(names.map((n) => [n, ownWords(n)]))
    // Known words: in some past task or some profile.
    const known = this.words.filter((w) => (this.df.get(w) ?? 0) > 0 || [...own.values()].some((s) => s.has(w)))
    const unknownWords = this.words.filter((w) => !known.includes(w))
    const weight = new Map(known.map((w) => [w, 1 + Math.log((this.n + 1) / ((this.df.get(w) ?? 0) + 1))]))
    const totalWeight = [...weight.values()].reduce((s, x) => s + x, 0)
    const candidates: Candidate[] = []
    for (const name of names) {
      const a = this.by.get(name)
      const mine = own.get(name)!
      const share = (has: (w: string) => boolean) => (totalWeight ? known.filter(has).reduce((s, w) => s + weight.get(w)!, 0) / totalWeight : 0)
      const hist = share((w) => !!a?.words.has(w))
      const prof = share((w) => mine.has(w))
      let fit = share((w) => !!a?.words.has(w) || mine.has(w))
      if (fit <= 0) continue
      const domain = this.domainAll.length ? this.domainAll.some((w) => mine.has(w) || a?.words.has(w)) || !!a?.domainInTasks : null
      if (domain === false) fit /= 2
      const n = a?.matched ?? 0
      const success = ((a?.wOk ?? 0) + 1) / ((a?.wSum ?? 0) + 2)
      const e = n / (n + 3)
      const confidence = round(Math.sqrt(fit) * success * (0.4 + 0.6 * e), 3)
      candidates.push({
        agent: name,
        confidence,
        qualifies: confidence >= minConfidence,
        successRate: a && a.matched ? a.ok / a.matched : null,
        weightedSuccessRate: round(success, 3),
        avgDurationSeconds: a && a.matched ? a.duration / a.matched : null,
        experience: n,
        totalTasks: a?.total ?? 0,
        trend: this.trends.result(name).trend,
        fit: { history: round(hist, 3), profile: round(prof, 3), domain },
        evidence: {
          keywords: [...(a?.words ?? [])].map(([keyword, s]) => ({ keyword, tasks: s.tasks, succeeded: s.ok })).sort((x, y) => y.tasks - x.tasks || x.keyword.localeCompare(y.keyword)),
          profileWords: [...this.words, ...this.domainWords].filter((w) => mine.has(w)),
          tasks: (a?.latest ?? []).map((l) => l.task),
        },
      })
    }
    candidates.sort((x, y) => y.confidence - x.confidence || y.experience - x.experience || x.agent.localeCompare(y.agent))
    const best = candidates.find((c) => c.qualifies) ?? null
    const query = {
      task: this.query.task,
      ...(this.query.domain !== undefined ? { domain: this.query.domain } : {}),
      keywords: this.words,
      domainWords: this.domainWords,
      unknownWords,
      minConfidence,
      now: new Date(this.now).toISOString(),
    }
    return {
      query,
      best,
      candidates: this.query.all ? candidates : best ? [best] : [],
      ...(best ? {} : { message: NO_SUITABLE_AGENT, nearest: candidates.slice(0, 3) }),
      tasksSeen: this.n,
    }
  }
}

// ---------------------------------------------------------------------------------------------
// One pass, several analyses

/**
 * Workflow events and invocations in one time order (ties: the invocation first, as a task ends
 * before its workflow). Each log is read in its own order; `t` is the record's time in ms (NaN
 * when unreadable, handed over at once).
 */
export async function mergeByTime(input: TelemetryInput, onWorkflow: (e: WorkflowEvent, t: number) => void, onInvocation: (r: Invocation, t: number) => void): Promise<void> {
  const ws = batchesOf(input.workflows)[Symbol.asyncIterator]()
  const is = batchesOf(input.invocations)[Symbol.asyncIterator]()
  let wb: readonly WorkflowEvent[] = []
  let ib: readonly Invocation[] = []
  let wk = 0
  let ik = 0
  let wDone = false
  let iDone = false
  let wt = Infinity
  let it = Infinity
  const nextW = async () => {
    while (!wDone && wk >= wb.length) {
      const n = await ws.next()
      if (n.done) wDone = true
      else [wb, wk] = [n.value, 0]
    }
    wt = wDone ? Infinity : timeOf(wb[wk]!.timestamp)
  }
  const nextI = async () => {
    while (!iDone && ik >= ib.length) {
      const n = await is.next()
      if (n.done) iDone = true
      else [ib, ik] = [n.value, 0]
    }
    it = iDone ? Infinity : timeOf(ib[ik]!.timestamp)
  }
  await nextW()
  await nextI()
  while (!wDone || !iDone) {
    if (!iDone && (wDone || it <= wt)) {
      onInvocation(ib[ik++]!, it === -Infinity ? NaN : it)
      if (ik < ib.length) it = timeOf(ib[ik]!.timestamp)
      else await nextI()
    } else {
      onWorkflow(wb[wk++]!, wt === -Infinity ? NaN : wt)
      if (wk < wb.length) wt = timeOf(wb[wk]!.timestamp)
      else await nextW()
    }
  }
}

/** A record's place in time; an unreadable one goes first (and is counted by whoever needs its time). */
const timeOf = (s: string): number => {
  const t = isoMs(s)
  return Number.isNaN(t) ? -Infinity : t
}

export interface AnalyzeOptions {
  /** Default: the time of the latest record. */
  now?: number
  workflows?: boolean
  agents?: boolean
  overhead?: boolean
  teams?: boolean
  /** Per-workflow overhead rows to keep (default 20). */
  keep?: number
  trend?: { agent: string; days?: number }
  bestAgent?: { query: BestAgentQuery; profiles: readonly ProfileInfo[] }
}

export interface Analysis {
  now: string
  workflows?: WorkflowStats
  agents?: AgentStats
  overhead?: OverheadStats
  teams?: TeamStats
  trend?: Trend
  bestAgent?: BestAgentResult
}

/**
 * Runs the analyses asked for over one pass of both logs. Trends and best-agent need "now"
 * before the pass: without `now` they take the latest record's time, which costs a first pass
 * over the invocations.
 */
export async function analyze(input: TelemetryInput, opts: AnalyzeOptions): Promise<Analysis> {
  let now = opts.now
  if (now === undefined && (opts.trend || opts.bestAgent)) now = await latestTime(input.invocations)
  const wf = opts.workflows ? new WorkflowFold() : undefined
  const ag = opts.agents ? new AgentFold() : undefined
  const tl = opts.overhead || opts.teams ? new TimelineFold(opts.keep) : undefined
  const tr = opts.trend ? new TrendFold(now!, opts.trend.days ?? 30, opts.trend.agent) : undefined
  const ba = opts.bestAgent ? new BestAgentFold(opts.bestAgent.query, opts.bestAgent.profiles, now!) : undefined
  let latest = -Infinity
  const onInvocation = (r: Invocation, t: number) => {
    const endMs = r.ended_at === r.timestamp && !Number.isNaN(t) ? t : isoMs(r.ended_at)
    if (endMs > latest) latest = endMs
    ag?.add(r, endMs)
    tr?.add(r, endMs)
    ba?.add(r, endMs)
    tl?.invocation(r, t, isoMs(r.started_at), endMs)
  }
  if (tl)
    await mergeByTime(
      input,
      (e, t) => {
        if (t > latest) latest = t
        wf?.add(e)
        tl.workflow(e, t)
      },
      onInvocation,
    )
  else {
    const jobs: Promise<void>[] = []
    if (wf) jobs.push(each(input.workflows, (e) => wf.add(e)))
    if (ag || tr || ba) jobs.push(each(input.invocations, (r) => onInvocation(r, isoMs(r.timestamp))))
    await Promise.all(jobs)
  }
  const at = now ?? (latest === -Infinity ? 0 : latest)
  return {
    now: new Date(at).toISOString(),
    ...(wf ? { workflows: wf.result() } : {}),
    ...(ag ? { agents: ag.result() } : {}),
    ...(tl && opts.overhead ? { overhead: tl.overhead() } : {}),
    ...(tl && opts.teams ? { teams: tl.teamStats() } : {}),
    ...(tr ? { trend: tr.result(opts.trend!.agent) } : {}),
    ...(ba ? { bestAgent: ba.result() } : {}),
  }
}

/** The latest `ended_at` among the invocations (0 without any). */
export async function latestTime(invocations: Source<Invocation>): Promise<number> {
  let latest = -Infinity
  await each(invocations, (r) => {
    const t = isoMs(r.ended_at)
    if (t > latest) latest = t
  })
  return latest === -Infinity ? 0 : latest
}

// The analyses one by one (each a pass of its own; `analyze` shares one).

/** `top`: how many agent sequences to list (default 5). */
export async function workflowStats(workflows: Source<WorkflowEvent>, opts: { top?: number } = {}): Promise<WorkflowStats> {
  const f = new WorkflowFold(opts.top)
  await each(workflows, (e) => f.add(e))
  return f.result()
}

export async function agentStats(invocations: Source<Invocation>): Promise<AgentStats> {
  const f = new AgentFold()
  await each(invocations, (r) => f.add(r))
  return f.result()
}

export async function overheadStats(input: TelemetryInput, opts: { keep?: number } = {}): Promise<OverheadStats> {
  return (await analyze(input, { overhead: true, keep: opts.keep })).overhead!
}

export async function teamStats(input: TelemetryInput): Promise<TeamStats> {
  return (await analyze(input, { teams: true })).teams!
}

/** An agent's trend over the last `days` (default 30): the last 7 days against the days before. */
export async function trends(agent: string, invocations: Source<Invocation>, opts: { now?: number; days?: number } = {}): Promise<Trend> {
  const now = opts.now ?? (await latestTime(invocations))
  const f = new TrendFold(now, opts.days ?? 30, agent)
  await each(invocations, (r) => f.add(r))
  return f.result(agent)
}

export async function bestAgent(query: BestAgentQuery, invocations: Source<Invocation>, profiles: readonly ProfileInfo[], opts: { now?: number } = {}): Promise<BestAgentResult> {
  const now = opts.now ?? (await latestTime(invocations))
  const f = new BestAgentFold(query, profiles, now)
  await each(invocations, (r) => f.add(r))
  return f.result()
}
