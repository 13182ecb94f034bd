#!/usr/bin/env node
/**
 * `npm run demo:telemetry`: what NSO's telemetry says about a month of work. Writes a plausible
 * 30-day history into a temporary project (several agents, a sequential and a parallel team, some
 * failures, an agent getting worse, the older lines in a rotated file), then prints what
 * `nso stats` and `nso best-agent` print for it, and removes the folder.
 */
import { createHash } from "node:crypto"
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { pathToFileURL } from "node:url"
import { realpathSync } from "node:fs"
import { createDeps } from "../plugin/deps.js"
import { analyze, keywordsOf, type ProfileInfo } from "../plugin/telemetry/analysis.js"
import { openTelemetry } from "../plugin/telemetry/read.js"
import { TELEMETRY_FILES, type Invocation, type WorkflowEvent } from "../plugin/telemetry/schema.js"
import { formatBestAgent, formatOverhead, formatTeams, formatTrend, formatWorkflows } from "./nso.js"

const DAY = 86_400_000
const MIN = 60_000

/** The agents of the demo project, as `nso best-agent` passes profiles. */
export const DEMO_PROFILES: ProfileInfo[] = [
  { name: "backend-architect", specialization: "backend services and APIs", tags: ["backend", "api"], description: "Designs and builds server-side code" },
  { name: "frontend-developer", specialization: "user interfaces", tags: ["frontend", "ui"], description: "Builds pages and components" },
  { name: "security-auditor", specialization: "application security audits", tags: ["security"], description: "Reviews code for vulnerabilities" },
  { name: "qa-specialist", specialization: "testing and quality", tags: ["qa", "testing"], description: "Writes and runs tests" },
  { name: "data-engineer", specialization: "data pipelines and warehouses", tags: ["data"], description: "Builds ETL jobs" },
  { name: "docs-writer", specialization: "technical documentation", tags: ["docs"], description: "Writes guides and reference pages" },
]

const TASKS: Record<string, string[]> = {
  "backend-architect": [
    "Build the REST API endpoint for orders",
    "Add pagination to the users API",
    "Design the database schema for invoices",
    "Fix the auth middleware for API tokens",
    "Add rate limiting to the public API",
  ],
  "frontend-developer": ["Build the checkout page form", "Fix the layout of the dashboard page", "Add a dark mode toggle component", "Make the login form accessible"],
  "security-auditor": ["Audit the OAuth login flow", "Review secrets handling in the deploy scripts", "Check the API for injection vulnerabilities"],
  "qa-specialist": ["Write regression tests for checkout", "Fix the flaky e2e login test", "Raise test coverage of the orders API"],
  "data-engineer": ["Build the nightly ETL job for orders", "Load invoices into the warehouse", "Fix the schema drift in the events pipeline"],
}

const TEAMS = {
  sequential: { team: "feature-delivery", pattern: "sequential", members: ["backend-architect", "frontend-developer", "qa-specialist"] },
  parallel: { team: "code-review", pattern: "parallel", members: ["security-auditor", "qa-specialist", "backend-architect"] },
} as const

/** mulberry32: the same history every run. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** How likely an agent's task succeeds, `daysAgo` days before now: data-engineer got worse this week, frontend-developer better. */
function successChance(agent: string, daysAgo: number): number {
  if (agent === "data-engineer") return daysAgo < 7 ? 0.35 : 0.92
  if (agent === "frontend-developer") return daysAgo < 7 ? 0.95 : 0.7
  return 0.9
}

/**
 * Writes 30 days of telemetry ending at `now` into `dir` (the project's telemetry folder): plain
 * tasks every day, a sequential team run every other day, a parallel one every third. The older
 * two thirds of the invocation lines go to the rotated file `agent_invocations.jsonl.1`.
 */
export async function writeDemoHistory(dir: string, now: number): Promise<{ invocations: number; workflows: number }> {
  const random = rng(7)
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!
  const iso = (ms: number) => new Date(ms).toISOString()
  const lines: { t: number; file: "w" | "i"; rec: WorkflowEvent | Invocation }[] = []
  let n = 0
  const id = (prefix: string) => `${prefix}_demo${(n++).toString(36).padStart(5, "0")}`

  /** One task from `start`; returns its end. */
  const task = (agent: string, start: number, workflow: string, team?: string): { end: number; ok: boolean } => {
    const text = pick(TASKS[agent]!)
    const queue = Math.round(random() * 30)
    const active = 120 + Math.round(random() * 600)
    const answer = random() < 0.15 ? 60 + Math.round(random() * 180) : 0
    const end = start + (queue + active + answer) * 1000
    const daysAgo = (now - end) / DAY
    const ok = random() < successChance(agent, daysAgo)
    const cancelled = !ok && random() < 0.15
    const input = 3000 + Math.round(random() * 25_000)
    const deliveries = team ? Math.round(random() * 2) : 0
    const p = DEMO_PROFILES.find((x) => x.name === agent)!
    const taskId = workflow.startsWith("tsk_") ? workflow : id("tsk")
    const r: Invocation = {
      timestamp: iso(end),
      event: "agent_invocation",
      task_id: taskId,
      agent,
      model: "anthropic/claude-sonnet-4",
      task_digest: createHash("sha256").update(text).digest("hex").slice(0, 16),
      keywords: keywordsOf(text),
      tags: [...(p.tags ?? [])],
      domain: p.specialization!,
      workflow_id: workflow,
      ...(team ? { team } : {}),
      started_at: iso(start),
      ended_at: iso(end),
      duration_seconds: queue + active + answer,
      active_seconds: active,
      waiting_seconds: { queue, answer },
      outcome: ok ? "success" : cancelled ? "cancelled" : "failure",
      success: ok,
      ...(ok ? {} : { error: cancelled ? "cancelled by the user" : "the tests still fail" }),
      tokens: { input, output: Math.round(input / 5), reasoning: 0, cache_read: Math.round(input / 2), cache_write: 0 },
      cost: Math.round(input * 0.000004 * 1e4) / 1e4,
      turns: 4 + Math.round(random() * 12),
      tool_calls: 3 + Math.round(random() * 25),
      retries: 0,
      delivery_turns: deliveries,
      coordination_tokens: deliveries * (600 + Math.round(random() * 900)),
    }
    lines.push({ t: end, file: "i", rec: r })
    return { end, ok }
  }

  const from = now - 30 * DAY
  for (let day = 0; day < 30; day++) {
    const dayStart = from + day * DAY + 9 * 60 * MIN
    // Plain delegations: a workflow of one agent each.
    const count = 4 + Math.floor(random() * 4)
    for (let k = 0; k < count; k++) {
      const agent = pick(Object.keys(TASKS))
      const start = dayStart + Math.floor(random() * 8 * 60) * MIN
      const wf = id("tsk")
      lines.push({ t: start, file: "w", rec: { timestamp: iso(start), event: "workflow_start", workflow_id: wf, project_name: "demo-shop", agent_plan: [agent], nso: { kind: "task" } } })
      const { end, ok } = task(agent, start, wf)
      lines.push({ t: end, file: "w", rec: { timestamp: iso(end), event: "workflow_complete", workflow_id: wf, duration_seconds: (end - start) / 1000, success: ok, agents_executed: [agent], nso: { kind: "task" } } })
    }
    // A sequential team every other day: each member starts after the previous one handed over.
    if (day % 2 === 0) {
      const def = TEAMS.sequential
      const wf = id("wf")
      const start = dayStart + 2 * 60 * MIN
      const nso = { kind: "team" as const, team: def.team, pattern: def.pattern }
      lines.push({ t: start, file: "w", rec: { timestamp: iso(start), event: "workflow_start", workflow_id: wf, project_name: "demo-shop", agent_plan: [...def.members], nso } })
      let at = start
      let ok = true
      let prev: string | undefined
      for (const m of def.members) {
        if (prev) {
          at += (20 + Math.round(random() * 100)) * 1000 // the handoff: the coordinator reads, plans, starts the next
          lines.push({ t: at, file: "w", rec: { timestamp: iso(at), event: "agent_handoff", workflow_id: wf, from_agent: prev, to_agent: m, artifacts: [`artifacts/${prev}.md`] } })
        }
        const r = task(m, at, wf, def.team)
        ok &&= r.ok
        at = r.end
        prev = m
      }
      const end = at + 45_000
      lines.push({ t: end, file: "w", rec: { timestamp: iso(end), event: "workflow_complete", workflow_id: wf, duration_seconds: (end - start) / 1000, success: ok, agents_executed: [...def.members], nso: { ...nso, phase: ok ? "completed" : "partial" } } })
    }
    // A parallel team every third day: every member at once, then a synthesis.
    if (day % 3 === 1) {
      const def = TEAMS.parallel
      const wf = id("wf")
      const start = dayStart + 5 * 60 * MIN
      const nso = { kind: "team" as const, team: def.team, pattern: def.pattern }
      lines.push({ t: start, file: "w", rec: { timestamp: iso(start), event: "workflow_start", workflow_id: wf, project_name: "demo-shop", agent_plan: [...def.members], nso } })
      let end = start
      let ok = true
      for (const m of def.members) {
        const r = task(m, start + Math.round(random() * 5000), wf, def.team)
        ok &&= r.ok
        end = Math.max(end, r.end)
      }
      end += 60_000
      lines.push({ t: end, file: "w", rec: { timestamp: iso(end), event: "workflow_complete", workflow_id: wf, duration_seconds: (end - start) / 1000, success: ok, agents_executed: [...def.members], nso: { ...nso, phase: ok ? "completed" : "partial" } } })
    }
  }
  lines.sort((a, b) => a.t - b.t)
  const inv = lines.filter((l) => l.file === "i").map((l) => JSON.stringify(l.rec) + "\n")
  const wfl = lines.filter((l) => l.file === "w").map((l) => JSON.stringify(l.rec) + "\n")
  await mkdir(dir, { recursive: true })
  const cut = Math.floor((inv.length * 2) / 3)
  await writeFile(join(dir, `${TELEMETRY_FILES.invocations}.1`), inv.slice(0, cut).join(""))
  await writeFile(join(dir, TELEMETRY_FILES.invocations), inv.slice(cut).join(""))
  await writeFile(join(dir, TELEMETRY_FILES.workflows), wfl.join(""))
  return { invocations: inv.length, workflows: lines.filter((l) => l.file === "w" && (l.rec as WorkflowEvent).event === "workflow_complete").length }
}

/** What the demo prints for the telemetry in `dir`: the same text as `nso stats …` and `nso best-agent`. */
export async function demoReport(dir: string, now: number): Promise<string[]> {
  const { input, report } = openTelemetry(createDeps(), dir)
  const all = await analyze(input, { now, workflows: true, overhead: true, teams: true, keep: 5 })
  const declining = await analyze(input, { now, trend: { agent: "data-engineer", days: 30 } })
  const improving = await analyze(input, { now, trend: { agent: "frontend-developer", days: 30 } })
  const api = await analyze(input, { now, bestAgent: { query: { task: "Add an API endpoint for refunds", domain: "backend" }, profiles: DEMO_PROFILES } })
  const ranked = await analyze(input, { now, bestAgent: { query: { task: "Write tests for the checkout API", all: true }, profiles: DEMO_PROFILES } })
  const none = await analyze(input, { now, bestAgent: { query: { task: "Translate the marketing site into Japanese" }, profiles: DEMO_PROFILES } })
  const section = (title: string, command: string) => ["", `== ${title}  ($ ${command})`]
  return [
    `Read ${report.invocations.records} invocations from ${report.invocations.files.length} file(s) (the older ones rotated) and ${report.workflows.records} workflow events.`,
    ...section("Workflows", "nso stats workflows"),
    ...formatWorkflows(all.workflows!),
    ...section("Coordination overhead", "nso stats overhead --limit 5"),
    ...formatOverhead(all.overhead!),
    ...section("Teams", "nso stats teams"),
    ...formatTeams(all.teams!),
    ...section("Trend", "nso stats trends data-engineer"),
    ...formatTrend(declining.trend!),
    ...section("Trend", "nso stats trends frontend-developer"),
    ...formatTrend(improving.trend!),
    ...section("Best agent", 'nso best-agent --task "Add an API endpoint for refunds" --domain backend'),
    ...formatBestAgent(api.bestAgent!),
    ...section("Best agent, every candidate", 'nso best-agent --task "Write tests for the checkout API" --all'),
    ...formatBestAgent(ranked.bestAgent!),
    ...section("Best agent, nobody fits", 'nso best-agent --task "Translate the marketing site into Japanese"'),
    ...formatBestAgent(none.bestAgent!),
  ]
}

async function demo(): Promise<void> {
  const project = await mkdtemp(join(tmpdir(), "nso-demo-telemetry-"))
  try {
    const dir = join(project, ".opencode", "nso", "telemetry")
    const now = Date.now()
    const made = await writeDemoHistory(dir, now)
    console.log(`NSO telemetry demo: 30 days of a project's history (${made.invocations} agent invocations, ${made.workflows} workflows) in ${project}\n`)
    for (const line of await demoReport(dir, now)) console.log(line)
    console.log(`\nIn a real project NSO writes these files itself (.opencode/nso/telemetry/); run the same commands there.`)
  } finally {
    await rm(project, { recursive: true, force: true })
  }
}

function invokedAs(): string | undefined {
  try {
    return process.argv[1] ? realpathSync(process.argv[1]) : undefined
  } catch {
    return undefined
  }
}

const invoked = invokedAs()
if (invoked && import.meta.url === pathToFileURL(invoked).href) await demo()
