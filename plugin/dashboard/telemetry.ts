import type { Fs } from "../deps.js"
import { analyze, AgentFold, TrendFold, type AgentSummary, type OverheadStats, type TrendWord } from "../telemetry/analysis.js"
import { openTelemetry } from "../telemetry/read.js"

/**
 * The telemetry view's figures, from the same analyses as `nso telemetry`: success rate and
 * duration per agent with a daily series for sparklines and the trend word, and coordination
 * overhead (time and tokens).
 */

/** Days in a sparkline. */
export const SPARK_DAYS = 14
const DAY_MS = 86_400_000

export interface TelemetryView {
  now: string
  agents: (AgentSummary & {
    trend: TrendWord
    /** One point per day, oldest first: tasks that ended that day and the share that succeeded. */
    daily: { tasks: number; successRate: number | null; avgDurationSeconds: number | null }[]
  })[]
  overhead: Pick<OverheadStats, "workflows" | "coverage" | "tokens" | "byKind"> & { recent: OverheadStats["recent"] }
}

export async function telemetryView(deps: { fs: Fs }, dir: string, now: number): Promise<TelemetryView> {
  const files = openTelemetry(deps, dir)
  const a = await analyze(files.input, { now, overhead: true, keep: 14 })
  const agents = new AgentFold()
  const trend = new TrendFold(now, 30)
  const first = startOfDay(now) - (SPARK_DAYS - 1) * DAY_MS
  const days = new Map<string, { n: number; ok: number; counted: number; duration: number }[]>()
  for await (const r of openTelemetry(deps, dir).input.invocations) {
    const end = Date.parse(r.ended_at)
    agents.add(r, end)
    trend.add(r, end)
    const i = Math.floor((end - first) / DAY_MS)
    if (i < 0 || i >= SPARK_DAYS) continue
    let series = days.get(r.agent)
    if (!series) days.set(r.agent, (series = Array.from({ length: SPARK_DAYS }, () => ({ n: 0, ok: 0, counted: 0, duration: 0 }))))
    const d = series[i]!
    d.n++
    d.duration += r.duration_seconds
    // As in the success rate: a cancelled task says nothing about its agent.
    if (r.outcome !== "cancelled") d.counted++
    if (r.success) d.ok++
  }
  const o = a.overhead!
  return {
    now: new Date(now).toISOString(),
    agents: agents.result().agents.map((s) => ({
      ...s,
      trend: trend.result(s.agent).trend,
      daily: (days.get(s.agent) ?? Array.from({ length: SPARK_DAYS }, () => ({ n: 0, ok: 0, counted: 0, duration: 0 }))).map((d) => ({
        tasks: d.n,
        successRate: d.counted ? d.ok / d.counted : null,
        avgDurationSeconds: d.n ? d.duration / d.n : null,
      })),
    })),
    overhead: { workflows: o.workflows, coverage: o.coverage, tokens: o.tokens, byKind: o.byKind, recent: o.recent },
  }
}

function startOfDay(ms: number): number {
  return ms - (ms % DAY_MS)
}
