import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import {
  addInterval,
  agentStats,
  analyze,
  bandOf,
  bestAgent,
  isoMs,
  keywordsOf,
  NO_SUITABLE_AGENT,
  singular,
  termsOf,
  overheadStats,
  teamStats,
  TimelineFold,
  trends,
  workflowStats,
  type ProfileInfo,
} from "../../plugin/telemetry/analysis.js"
import { logFiles, openTelemetry, readLog, acceptInvocation } from "../../plugin/telemetry/read.js"
import { TELEMETRY_FILES, type Invocation, type WorkflowEvent } from "../../plugin/telemetry/schema.js"
import { demoReport, writeDemoHistory } from "../../scripts/demo-telemetry.js"
import { createDeps } from "../../plugin/deps.js"
import { keywordsOf as recorderKeywords } from "../../plugin/telemetry/keywords.js"
import { tempDir } from "../helpers/fake-deps.js"

const T0 = Date.UTC(2025, 5, 1, 12, 0, 0)
const DAY = 86_400_000
const iso = (ms: number) => new Date(ms).toISOString()
const S = 1000

let seq = 0
/** An invocation line as the recorder writes it. `at`: when it was created (ms); times in seconds. */
function inv(o: {
  agent: string
  at: number
  active: number
  queue?: number
  answer?: number
  workflow?: string
  team?: string
  success?: boolean
  cancelled?: boolean
  keywords?: string[]
  tags?: string[]
  domain?: string
  tokens?: number
  coord?: number
}): Invocation {
  const queue = o.queue ?? 0
  const answer = o.answer ?? 0
  const duration = queue + o.active + answer
  const end = o.at + duration * S
  const id = `tsk_${(seq++).toString(36).padStart(6, "0")}`
  const ok = o.cancelled ? false : (o.success ?? true)
  return {
    timestamp: iso(end),
    event: "agent_invocation",
    task_id: id,
    agent: o.agent,
    task_digest: id.padEnd(16, "0").slice(0, 16),
    keywords: o.keywords ?? [],
    tags: o.tags ?? [],
    ...(o.domain ? { domain: o.domain } : {}),
    workflow_id: o.workflow ?? id,
    ...(o.team ? { team: o.team } : {}),
    started_at: iso(o.at),
    ended_at: iso(end),
    duration_seconds: duration,
    active_seconds: o.active,
    waiting_seconds: { queue, answer },
    outcome: o.cancelled ? "cancelled" : ok ? "success" : "failure",
    success: ok,
    tokens: { input: o.tokens ?? 1000, output: 0, reasoning: 0, cache_read: 0, cache_write: 0 },
    cost: 0.01,
    turns: 3,
    tool_calls: 2,
    retries: 0,
    delivery_turns: o.coord ? 1 : 0,
    coordination_tokens: o.coord ?? 0,
  }
}

const start = (id: string, at: number, plan: string[], team?: { team: string; pattern: string }): WorkflowEvent => ({
  timestamp: iso(at),
  event: "workflow_start",
  workflow_id: id,
  project_name: "p",
  agent_plan: plan,
  nso: team ? { kind: "team", ...team } : { kind: "task" },
})
const complete = (id: string, at: number, seconds: number, success: boolean, agents: string[], team?: { team: string; pattern: string }): WorkflowEvent => ({
  timestamp: iso(at + seconds * S),
  event: "workflow_complete",
  workflow_id: id,
  duration_seconds: seconds,
  success,
  agents_executed: agents,
  nso: team ? { kind: "team", ...team } : { kind: "task" },
})

/** Sorts lines by their timestamp, as the files hold them. */
const byTime = <T extends { timestamp: string }>(xs: T[]): T[] => [...xs].sort((a, b) => isoMs(a.timestamp) - isoMs(b.timestamp))

/** A one-agent task and its two workflow lines. */
function plainTask(o: Parameters<typeof inv>[0]): { w: WorkflowEvent[]; i: Invocation } {
  const i = inv(o)
  return { i, w: [start(i.workflow_id, o.at, [o.agent]), complete(i.workflow_id, o.at, i.duration_seconds, i.success, [o.agent])] }
}

const SEQ = { team: "feature", pattern: "sequential" }
const PAR = { team: "review", pattern: "parallel" }

/**
 * Two team runs of 1000 s each:
 * - sequential: a works [10, 410] (10 s queued), b [500, 900]: 800 s of work, 200 s nobody → 20 %.
 * - parallel: a [0, 900], b [50, 950], c [100, 800]: union 950 s → 5 %; Σ 2500 s → −150 %;
 *   at least two at once during [50, 900] = 850 s.
 */
function teamFixture(): { workflows: WorkflowEvent[]; invocations: Invocation[] } {
  const s0 = T0
  const p0 = T0 + 2 * 3600 * S
  const invocations = [
    inv({ agent: "a", at: s0, queue: 10, active: 400, workflow: "wf_seq", team: "feature", tokens: 4000, coord: 400 }),
    inv({ agent: "b", at: s0 + 500 * S, active: 400, workflow: "wf_seq", team: "feature", tokens: 6000, coord: 600 }),
    inv({ agent: "a", at: p0, active: 900, workflow: "wf_par", team: "review", tokens: 1000 }),
    inv({ agent: "b", at: p0 + 50 * S, active: 900, workflow: "wf_par", team: "review", tokens: 1000 }),
    inv({ agent: "c", at: p0 + 100 * S, active: 700, workflow: "wf_par", team: "review", tokens: 1000, success: false }),
  ]
  const workflows = [
    start("wf_seq", s0, ["a", "b"], SEQ),
    { timestamp: iso(s0 + 450 * S), event: "agent_handoff", workflow_id: "wf_seq", from_agent: "a", to_agent: "b", artifacts: ["spec.md"] } as WorkflowEvent,
    complete("wf_seq", s0, 1000, true, ["a", "b"], SEQ),
    start("wf_par", p0, ["a", "b", "c"], PAR),
    complete("wf_par", p0, 1000, false, ["a", "b", "c"], PAR),
  ]
  return { workflows: byTime(workflows), invocations: byTime(invocations) }
}

describe("keywords", () => {
  it("the query is cut into words by the recorder's own keywordsOf; plurals fold when matching, on both sides", async () => {
    expect(keywordsOf).toBe(recorderKeywords)
    expect(termsOf("Please build the REST APIs for the Orders API and its endpoints")).toEqual(["build", "rest", "api", "order", "endpoint"])
    expect(["apis", "endpoints", "queries", "classes", "status", "analysis", "redis", "css", "bus"].map(singular)).toEqual(["api", "endpoint", "query", "class", "status", "analysis", "redis", "css", "bus"])
    // Stored "apis" (as written) and a query for "API" meet.
    const r = await bestAgent({ task: "API", all: true }, [inv({ agent: "a", at: T0, active: 10, keywords: ["apis", "gateway"] })], [], { now: T0 + DAY })
    expect(r.candidates[0]?.evidence.keywords).toEqual([{ keyword: "api", tasks: 1, succeeded: 1 }])
  })
})

describe("timestamps", () => {
  it("reads the recorder's ISO form directly and anything else through Date.parse", () => {
    expect(isoMs("2025-10-21T10:45:00.123Z")).toBe(Date.parse("2025-10-21T10:45:00.123Z"))
    expect(isoMs("2025-10-21T10:45:00Z")).toBe(Date.parse("2025-10-21T10:45:00Z"))
    expect(isoMs("2025-10-21T12:45:00+02:00")).toBe(Date.parse("2025-10-21T10:45:00Z"))
    expect(isoMs("not a time")).toBeNaN()
  })
})

describe("workflow statistics", () => {
  it("total, success rate, average duration and agents, running ones, and the most common sequences", async () => {
    const f = teamFixture()
    const a = plainTask({ agent: "a", at: T0 + 5 * 3600 * S, active: 100 })
    const b = plainTask({ agent: "a", at: T0 + 6 * 3600 * S, active: 300, success: false })
    const running = start("wf_running", T0 + 7 * 3600 * S, ["a", "b"], SEQ)
    const w = await workflowStats([...f.workflows, ...a.w, ...b.w, running])
    expect(w).toMatchObject({
      total: 4,
      succeeded: 2,
      successRate: 0.5,
      avgDurationSeconds: (1000 + 1000 + 100 + 300) / 4,
      avgAgentsPerWorkflow: (2 + 3 + 1 + 1) / 4,
      running: 1,
      byKind: { team: { total: 2, succeeded: 1, successRate: 0.5, avgDurationSeconds: 1000 }, task: { total: 2, succeeded: 1, avgDurationSeconds: 200 } },
    })
    expect(w.mostCommonPatterns[0]).toEqual({ pattern: "a", count: 2, successRate: 0.5 })
    expect(w.mostCommonPatterns.map((p) => p.pattern)).toEqual(["a", "a → b", "a → b → c"])
    expect(w.mostCommonSequences.map((p) => p.pattern)).toEqual(["a → b", "a → b → c"])
  })

  it("nothing recorded: zeros and nulls, no division by zero", async () => {
    const w = await workflowStats([])
    expect(w).toMatchObject({ total: 0, successRate: null, avgDurationSeconds: null, avgAgentsPerWorkflow: null, mostCommonPatterns: [] })
    const o = await overheadStats({ workflows: [], invocations: [] })
    expect(o).toMatchObject({ workflows: 0, coverage: { overheadPct: null, band: null }, original: { overheadPct: null }, tokens: { totalTokens: 0, coordinationPct: null } })
    expect((await teamStats({ workflows: [], invocations: [] })).teams).toEqual([])
    expect((await agentStats([])).agents).toEqual([])
  })
})

describe("coordination overhead", () => {
  it("sequential agents: time nobody worked; both formulas agree", async () => {
    const f = teamFixture()
    const o = await overheadStats({ workflows: f.workflows, invocations: f.invocations })
    const seq = o.recent.find((r) => r.workflow_id === "wf_seq")!
    expect(seq).toMatchObject({ kind: "team", team: "feature", wallSeconds: 1000, coveredSeconds: 800, agentSeconds: 800, parallelSeconds: 0, overheadPct: 20, originalOverheadPct: 20, invocations: 2 })
  })

  it("overlapping agents: the union of their time stays within the wall time; the original formula goes negative", async () => {
    const f = teamFixture()
    const o = await overheadStats({ workflows: f.workflows, invocations: f.invocations })
    const par = o.recent.find((r) => r.workflow_id === "wf_par")!
    expect(par).toMatchObject({ wallSeconds: 1000, coveredSeconds: 950, agentSeconds: 2500, parallelSeconds: 850, overheadPct: 5, originalOverheadPct: -150 })
    // Overall: wall 2000 s, covered 800 + 950, summed 800 + 2500.
    expect(o).toMatchObject({ workflows: 2, wallSeconds: 2000, coveredSeconds: 1750, agentSeconds: 3300 })
    expect(o.coverage).toEqual({ overheadPct: 12.5, avgCoordinationMinutes: round2(250 / 2 / 60), band: "efficient", recommendation: "Stay Phase 1-2" })
    expect(o.original).toMatchObject({ overheadPct: -65, band: "efficient", negativeWorkflows: 1 })
    expect(o.byKind.team.workflows).toBe(2)
    expect(o.byKind.task.workflows).toBe(0)
  })

  it("token overhead: delivery turns' tokens against the rest", async () => {
    const f = teamFixture()
    const o = await overheadStats({ workflows: f.workflows, invocations: f.invocations })
    expect(o.tokens).toEqual({ totalTokens: 13_000, coordinationTokens: 1000, workTokens: 12_000, coordinationPct: round2((1000 / 13_000) * 100), turns: 15, deliveryTurns: 2 })
  })

  it("an agent's answer waits are not work: its interval starts after its queue wait and lasts its active time", async () => {
    // 10 s queued, 100 s active, 50 s waiting for an answer: 160 s, of which 100 worked.
    const t = plainTask({ agent: "a", at: T0, queue: 10, active: 100, answer: 50 })
    const o = await overheadStats({ workflows: t.w, invocations: [t.i] })
    expect(o.recent[0]).toMatchObject({ kind: "task", wallSeconds: 160, coveredSeconds: 100, overheadPct: 37.5 })
    expect(o.coverage.band).toBe("high")
    expect(o.coverage.recommendation).toBe("Consider Phase 3")
  })

  it("the original bands: < 15 % efficient, 15–30 % moderate, > 30 % high", () => {
    expect(bandOf(-150)).toMatchObject({ band: "efficient", recommendation: "Stay Phase 1-2" })
    expect(bandOf(14.99).band).toBe("efficient")
    expect(bandOf(15)).toMatchObject({ band: "moderate", recommendation: "Monitor overhead" })
    expect(bandOf(30).band).toBe("moderate")
    expect(bandOf(30.01)).toMatchObject({ band: "high", recommendation: "Consider Phase 3" })
  })

  it("leaves out, and counts, what it cannot measure", async () => {
    const f = teamFixture()
    const lost = inv({ agent: "a", at: T0 + 3 * 3600 * S, active: 10, workflow: "wf_unknown" })
    const bare = [start("wf_bare", T0 + 4 * 3600 * S, ["a"]), complete("wf_bare", T0 + 4 * 3600 * S, 50, true, ["a"])]
    const zero = plainTask({ agent: "a", at: T0 + 5 * 3600 * S, active: 0 })
    const running = start("wf_running", T0 + 6 * 3600 * S, ["a"])
    const o = await overheadStats({ workflows: byTime([...f.workflows, ...bare, ...zero.w, running]), invocations: byTime([...f.invocations, lost, zero.i]) })
    expect(o.workflows).toBe(2)
    expect(o.skipped).toEqual({ incomplete: 1, withoutInvocations: 1, zeroDuration: 1, unmatchedInvocations: 1, unreadableTimes: 0 })
  })

  it("an invocation line written shortly after its workflow's completion still counts", async () => {
    const i = inv({ agent: "a", at: T0, active: 100 })
    const early = complete(i.workflow_id, T0, 100, true, ["a"])
    // The completion line's time is 2 s before the invocation's (clocks, batching).
    const w = [start(i.workflow_id, T0, ["a"]), { ...early, timestamp: iso(T0 + 98 * S) }]
    const o = await overheadStats({ workflows: w, invocations: [i] })
    expect(o.workflows).toBe(1)
    expect(o.skipped.unmatchedInvocations).toBe(0)
  })

  it("keeps only the workflows still running in memory, however long the history", () => {
    const fold = new TimelineFold(5)
    let maxOpen = 0
    for (let k = 0; k < 5000; k++) {
      const at = T0 + k * 600 * S
      const t = plainTask({ agent: "a", at, active: 100 })
      fold.workflow(t.w[0]!)
      fold.invocation(t.i)
      fold.workflow(t.w[1]!)
      maxOpen = Math.max(maxOpen, (fold as unknown as { open: Map<string, unknown> }).open.size)
    }
    expect(maxOpen).toBeLessThanOrEqual(3)
    const o = fold.overhead()
    expect(o.workflows).toBe(5000)
    expect(o.recent).toHaveLength(5)
  })

  it("intervals merge when they touch or overlap, in any order", () => {
    const l: number[] = []
    addInterval(l, 10, 20)
    addInterval(l, 30, 40)
    addInterval(l, 0, 5)
    expect(l).toEqual([0, 5, 10, 20, 30, 40])
    addInterval(l, 20, 30)
    expect(l).toEqual([0, 5, 10, 40])
    addInterval(l, 3, 50)
    expect(l).toEqual([0, 50])
    addInterval(l, 60, 60)
    expect(l).toEqual([0, 50])
  })
})

describe("teams", () => {
  it("runs, average duration, success rate, and utilization: the share of the time two members or more worked at once", async () => {
    const f = teamFixture()
    const t = await teamStats({ workflows: f.workflows, invocations: f.invocations })
    expect(t.teams).toEqual([
      { team: "feature", pattern: "sequential", runs: 1, succeeded: 1, successRate: 1, avgDurationSeconds: 1000, avgAgents: 2, utilizationPct: 0, overheadPct: 20 },
      { team: "review", pattern: "parallel", runs: 1, succeeded: 0, successRate: 0, avgDurationSeconds: 1000, avgAgents: 3, utilizationPct: 85, overheadPct: 5 },
    ])
  })
})

describe("agents", () => {
  it("per agent: tasks, success (cancelled ones left out), durations, tokens", async () => {
    const s = await agentStats([
      inv({ agent: "a", at: T0, active: 100 }),
      inv({ agent: "a", at: T0, active: 300, success: false }),
      inv({ agent: "a", at: T0, active: 200, cancelled: true }),
      inv({ agent: "b", at: T0, active: 50, tokens: 500 }),
    ])
    expect(s.invocations).toBe(4)
    expect(s.agents[0]).toMatchObject({ agent: "a", tasks: 3, succeeded: 1, failed: 1, cancelled: 1, successRate: 0.5, avgDurationSeconds: 200, tokens: 3000 })
    expect(s.agents[1]).toMatchObject({ agent: "b", tasks: 1, successRate: 1, tokens: 500 })
  })
})

describe("trends", () => {
  const NOW = T0 + 40 * DAY
  /** `n` tasks `daysAgo` days before NOW, `ok` of them successful. */
  const tasks = (agent: string, daysAgo: number, n: number, ok: number, extra: Partial<Parameters<typeof inv>[0]> = {}) =>
    Array.from({ length: n }, (_, k) => inv({ agent, at: NOW - daysAgo * DAY - k * 3600 * S, active: 60, success: k < ok, ...extra }))
  const history = [
    ...tasks("up", 20, 10, 5), // prior 50 %
    ...tasks("up", 2, 5, 5), // recent 100 %
    ...tasks("down", 15, 8, 8),
    ...tasks("down", 3, 4, 1),
    ...tasks("flat", 12, 10, 8),
    ...tasks("flat", 1, 5, 4),
    ...tasks("new", 20, 6, 6),
    ...tasks("new", 1, 2, 2),
    ...tasks("flat", 45, 20, 0), // older than 30 days: outside the window
    ...tasks("flat", 1, 5, 0, { cancelled: true }), // cancelled: not the agent's doing
  ]

  it("improving, declining, stable: the last 7 days against the 23 before, in points", async () => {
    expect(await trends("up", history, { now: NOW })).toMatchObject({ trend: "improving", changePoints: 50, recent: { tasks: 5, successRate: 1 }, prior: { tasks: 10, successRate: 0.5 } })
    expect(await trends("down", history, { now: NOW })).toMatchObject({ trend: "declining", changePoints: -75, recent: { tasks: 4, successRate: 0.25 } })
    expect(await trends("flat", history, { now: NOW })).toMatchObject({ trend: "stable", changePoints: 0, recent: { tasks: 5, successRate: 0.8 }, prior: { tasks: 10, successRate: 0.8 } })
  })

  it("not enough data below 3 tasks in either window, for an unknown agent, or a window of 7 days or less", async () => {
    const t = await trends("new", history, { now: NOW })
    expect(t).toMatchObject({ trend: "not enough data", recent: { tasks: 2 }, prior: { tasks: 6 } })
    expect(t.reason).toContain("at least 3")
    expect((await trends("nobody", history, { now: NOW })).trend).toBe("not enough data")
    expect((await trends("up", history, { now: NOW, days: 7 })).trend).toBe("not enough data")
    // Fewer days back: the prior window shrinks; "up" had its prior tasks 20 days ago.
    expect((await trends("up", history, { now: NOW, days: 14 })).prior.tasks).toBe(0)
  })

  it("without a given now, the latest record's time is now", async () => {
    const t = await trends("up", history)
    expect(t.now).toBe(iso(Math.max(...history.map((h) => isoMs(h.ended_at)))))
  })
})

describe("best agent", () => {
  const NOW = T0 + 40 * DAY
  const profiles: ProfileInfo[] = [
    { name: "backend-architect", specialization: "backend services and APIs", tags: ["backend", "api"], description: "Server-side code" },
    { name: "frontend-developer", specialization: "user interfaces", tags: ["frontend"], description: "Pages and components" },
    { name: "docs-writer", specialization: "technical documentation", tags: ["docs"], description: "Guides" },
    { name: "generalist", specialization: "", tags: [], description: "Does anything" },
  ]
  const past = (agent: string, keywords: string[], n: number, ok: number, daysAgo = 3) =>
    Array.from({ length: n }, (_, k) => inv({ agent, at: NOW - daysAgo * DAY - k * 3600 * S, active: 120, keywords, success: k < ok }))
  const history = [
    ...past("backend-architect", ["api", "endpoint", "orders"], 10, 9),
    ...past("backend-architect", ["database", "schema"], 4, 4),
    ...past("frontend-developer", ["checkout", "page", "api"], 3, 2),
    ...past("generalist", ["api", "endpoint"], 6, 2),
    ...past("frontend-developer", ["layout", "page"], 8, 8),
  ]

  it("ranks by keyword and profile fit, recency-weighted success and experience; the evidence says why", async () => {
    const r = await bestAgent({ task: "API endpoint development", domain: "backend" }, history, profiles, { now: NOW })
    expect(r.best?.agent).toBe("backend-architect")
    expect(r.best).toMatchObject({ qualifies: true, experience: 10, totalTasks: 14, successRate: 0.9, avgDurationSeconds: 120, fit: { history: 1, profile: expect.any(Number), domain: true } })
    expect(r.best!.confidence).toBeGreaterThan(0.7)
    expect(r.best!.evidence.keywords).toEqual([
      { keyword: "api", tasks: 10, succeeded: 9 },
      { keyword: "endpoint", tasks: 10, succeeded: 9 },
    ])
    expect(r.best!.evidence.profileWords).toEqual(["api", "backend"])
    expect(r.best!.evidence.tasks).toHaveLength(5)
    expect(r.best!.evidence.tasks[0]).toMatchObject({ outcome: "success", matched: ["api", "endpoint"] })
    // "development" is in no task and no profile: it cannot tell agents apart.
    expect(r.query).toMatchObject({ keywords: ["api", "endpoint", "development"], domainWords: ["backend"], unknownWords: ["development"], minConfidence: 0.5 })
    expect(r.candidates).toEqual([r.best])
  })

  it("--all ranks every candidate; one whose profile and tasks never mention the domain has its fit halved; a profile that never ran is listed, not recommended", async () => {
    const r = await bestAgent({ task: "API endpoint development", domain: "backend", all: true }, history, profiles, { now: NOW })
    expect(r.candidates.map((c) => c.agent)).toEqual(["backend-architect", "generalist", "frontend-developer"])
    const g = r.candidates.find((c) => c.agent === "generalist")!
    expect(g).toMatchObject({ qualifies: false, successRate: 2 / 6, fit: { domain: false } })
    expect(g.confidence).toBeLessThan(r.best!.confidence)
    const untried = await bestAgent({ task: "technical documentation guides", all: true }, history, profiles, { now: NOW })
    expect(untried.best).toBeNull()
    expect(untried.message).toBe(NO_SUITABLE_AGENT)
    expect(untried.candidates[0]).toMatchObject({ agent: "docs-writer", experience: 0, successRate: null, qualifies: false, confidence: 0.2 })
    expect(untried.nearest?.[0]?.agent).toBe("docs-writer")
    // A lower bar lets it through.
    expect((await bestAgent({ task: "technical documentation guides", minConfidence: 0.1 }, history, profiles, { now: NOW })).best?.agent).toBe("docs-writer")
  })

  it("recent successes count more than old ones", async () => {
    const h = [
      ...past("old-hand", ["migration"], 6, 6, 60), // all fine, two months ago
      ...past("old-hand", ["migration"], 4, 0, 1), // failing this week
      ...past("newcomer", ["migration"], 4, 4, 1),
      ...past("newcomer", ["migration"], 6, 0, 60),
    ]
    const r = await bestAgent({ task: "database migration", all: true, minConfidence: 0 }, h, [], { now: NOW })
    expect(r.candidates.map((c) => c.agent)).toEqual(["newcomer", "old-hand"])
    expect(r.candidates[0]!.successRate).toBe(0.4)
    expect(r.candidates[1]!.successRate).toBe(0.6)
    expect(r.candidates[0]!.weightedSuccessRate).toBeGreaterThan(r.candidates[1]!.weightedSuccessRate)
    expect(r.candidates[1]!.trend).toBe("not enough data")
  })

  it("nothing qualifying: no suitable agent — consider creating a specialist", async () => {
    const r = await bestAgent({ task: "Translate the marketing site into Japanese" }, history, profiles, { now: NOW })
    expect(r).toMatchObject({ best: null, candidates: [], message: "no suitable agent — consider creating a specialist", nearest: [] })
    expect(r.query.unknownWords).toEqual(["translate", "marketing", "site", "japanese"])
    const empty = await bestAgent({ task: "API endpoint" }, [], [], { now: NOW })
    expect(empty).toMatchObject({ best: null, message: NO_SUITABLE_AGENT, tasksSeen: 0 })
  })

  it("an agent without a loaded profile is still known by the tags and domain its tasks carried", async () => {
    const h = past("mystery", ["invoice"], 3, 3).map((r) => ({ ...r, tags: ["billing"], domain: "payments" }))
    const r = await bestAgent({ task: "payments work", domain: "billing", minConfidence: 0 }, h, [], { now: NOW })
    expect(r.best).toMatchObject({ agent: "mystery", experience: 0, fit: { profile: 1, domain: true } })
    expect(r.best!.evidence.profileWords).toEqual(["payment", "billing"])
  })
})

describe("reading the files", () => {
  const deps = createDeps()
  const lines = (recs: unknown[]) => recs.map((r) => JSON.stringify(r) + "\n").join("")

  it("missing files and a missing folder are empty logs", async () => {
    const dir = join(tempDir(), "telemetry")
    const { input, report } = openTelemetry(deps, dir)
    const a = await analyze(input, { workflows: true, overhead: true, teams: true, agents: true, trend: { agent: "x" }, bestAgent: { query: { task: "api" }, profiles: [] } })
    expect(a.workflows!.total).toBe(0)
    expect(a.overhead!.workflows).toBe(0)
    expect(a.agents!.invocations).toBe(0)
    expect(a.trend!.trend).toBe("not enough data")
    expect(a.bestAgent!.message).toBe(NO_SUITABLE_AGENT)
    expect(report.invocations).toEqual({ files: [], lines: 0, records: 0, invalid: 0, torn: 0 })
    mkdirSync(dir, { recursive: true })
    writeFileSync(join(dir, TELEMETRY_FILES.invocations), "")
    expect((await agentStats(input.invocations)).invocations).toBe(0)
    expect(report.invocations.files).toHaveLength(1)
  })

  it("a torn last line and invalid lines are skipped and counted, never fatal", async () => {
    const dir = tempDir()
    const good = [inv({ agent: "a", at: T0, active: 10 }), inv({ agent: "b", at: T0, active: 20 })]
    const text =
      lines([good[0]]) +
      "not json at all\n" +
      JSON.stringify({ event: "agent_invocation", agent: "no other field" }) +
      "\n\n" +
      lines([good[1]]).replace("\n", "\r\n") +
      JSON.stringify(inv({ agent: "c", at: T0, active: 5 })).slice(0, 80)
    writeFileSync(join(dir, TELEMETRY_FILES.invocations), text)
    const { input, report } = openTelemetry(deps, dir)
    const s = await agentStats(input.invocations)
    expect(s.agents.map((a) => a.agent)).toEqual(["a", "b"])
    expect(report.invocations).toMatchObject({ lines: 4, records: 2, invalid: 2, torn: 1 })
  })

  it("a valid line in another layout or with defaults left out is read through the schema", async () => {
    const dir = tempDir()
    const full = inv({ agent: "a", at: T0, active: 10 })
    const { tokens: _t, waiting_seconds: _w, keywords: _k, tags: _g, cost: _c, turns: _u, tool_calls: _tc, retries: _r, delivery_turns: _d, coordination_tokens: _ct, ...minimal } = full
    writeFileSync(join(dir, TELEMETRY_FILES.invocations), lines([{ ...minimal, extra: "kept out" }]))
    const got: Invocation[] = []
    for await (const r of readLog(deps, join(dir, TELEMETRY_FILES.invocations), acceptInvocation)) got.push(r)
    expect(got).toHaveLength(1)
    expect(got[0]).toMatchObject({ agent: "a", keywords: [], waiting_seconds: { queue: 0, answer: 0 }, tokens: { input: 0 } })
    expect(got[0]).not.toHaveProperty("extra")
  })

  it("rotated files are read oldest first (.2, .1, then the current file), across chunk boundaries", async () => {
    const dir = tempDir()
    const name = TELEMETRY_FILES.invocations
    const recs = Array.from({ length: 9 }, (_, k) => inv({ agent: `agent-${k}`, at: T0 + k * 3600 * S, active: 10, keywords: ["x".repeat(300)] }))
    writeFileSync(join(dir, `${name}.2`), lines(recs.slice(0, 3)))
    writeFileSync(join(dir, `${name}.1`), lines(recs.slice(3, 6)))
    writeFileSync(join(dir, name), lines(recs.slice(6)))
    writeFileSync(join(dir, `${name}.bak`), "ignored\n")
    writeFileSync(join(dir, `${name}.0`), "ignored\n")
    expect((await logFiles(deps.fs, join(dir, name))).map((f) => f.slice(dir.length + 1))).toEqual([`${name}.2`, `${name}.1`, name])
    // 64-byte chunks: every line is longer than a chunk.
    const got: string[] = []
    for await (const r of readLog(deps, join(dir, name), acceptInvocation, undefined, 64)) got.push(r.agent)
    expect(got).toEqual(recs.map((r) => r.agent))
    const { input, report } = openTelemetry(deps, dir, 100)
    const a = await analyze(input, { agents: true, trend: { agent: "agent-8" } })
    expect(a.agents!.invocations).toBe(9)
    expect(report.invocations.files).toHaveLength(3)
    expect(a.now).toBe(recs[8]!.ended_at)
  })

  it("one pass over the files gives what the separate analyses give", async () => {
    const dir = tempDir()
    const f = teamFixture()
    const extra = plainTask({ agent: "a", at: T0 + 10 * 3600 * S, active: 100, keywords: ["api"] })
    writeFileSync(join(dir, TELEMETRY_FILES.workflows), lines(byTime([...f.workflows, ...extra.w])))
    writeFileSync(join(dir, TELEMETRY_FILES.invocations), lines(byTime([...f.invocations, extra.i])))
    const { input } = openTelemetry(deps, dir)
    const now = T0 + DAY
    const all = await analyze(input, { now, workflows: true, agents: true, overhead: true, teams: true, trend: { agent: "a" }, bestAgent: { query: { task: "api" }, profiles: [] } })
    expect(all.workflows).toEqual(await workflowStats(input.workflows))
    expect(all.agents).toEqual(await agentStats(input.invocations))
    expect(all.overhead).toEqual(await overheadStats(input))
    expect(all.teams).toEqual(await teamStats(input))
    expect(all.trend).toEqual(await trends("a", input.invocations, { now }))
    expect(all.bestAgent).toEqual(await bestAgent({ task: "api" }, input.invocations, [], { now }))
    expect(all.overhead!.workflows).toBe(3)
  })
})

describe("demo", () => {
  it("writes a 30-day history (older lines rotated) and prints every analysis", async () => {
    const dir = join(tempDir(), ".opencode", "nso", "telemetry")
    const now = Date.UTC(2025, 9, 31, 18, 0, 0)
    const made = await writeDemoHistory(dir, now)
    expect(made.invocations).toBeGreaterThan(150)
    expect((await logFiles(createDeps().fs, join(dir, TELEMETRY_FILES.invocations))).length).toBe(2)
    const text = (await demoReport(dir, now)).join("\n")
    for (const heading of ["== Workflows", "== Coordination overhead", "== Teams", "== Trend", "== Best agent"]) expect(text).toContain(heading)
    expect(text).toMatch(/Workflows: \d+ completed · success \d+%/)
    expect(text).toContain("backend-architect → frontend-developer → qa-specialist")
    expect(text).toMatch(/time no agent worked .*: \d+\.\d% → (Stay Phase 1-2|Monitor overhead|Consider Phase 3)/)
    expect(text).toMatch(/original formula .*: -?\d+\.\d%/)
    expect(text).toContain("below zero in")
    expect(text).toContain("Bands: < 15% efficient → Stay Phase 1-2")
    expect(text).toMatch(/feature-delivery\s+sequential/)
    expect(text).toMatch(/code-review\s+parallel/)
    expect(text).toContain("data-engineer over the last 30 days: declining")
    expect(text).toContain("frontend-developer over the last 30 days: improving")
    expect(text).toMatch(/Best agent for "Add an API endpoint for refunds" \(domain backend\): backend-architect — confidence \d+%/)
    expect(text).toContain("why: past tasks about api")
    expect(text).toContain("All candidates")
    expect(text).toContain("no suitable agent — consider creating a specialist")
  })
})

function round2(x: number): number {
  return Math.round(x * 100) / 100
}
