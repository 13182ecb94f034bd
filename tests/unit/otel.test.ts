import { SpanStatusCode } from "@opentelemetry/api"
import { InMemorySpanExporter, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import { describe, expect, it } from "vitest"
import { createDeps, type Logger } from "../../plugin/deps.js"
import { Options } from "../../plugin/options.js"
import { otelSink } from "../../plugin/telemetry/otel.js"
import type { Invocation, WorkflowEvent } from "../../plugin/telemetry/schema.js"

const T0 = Date.parse("2025-01-01T10:00:00.000Z")
const iso = (ms: number) => new Date(T0 + ms).toISOString()
const ms = (t: [number, number]) => t[0] * 1000 + t[1] / 1e6

function invocation(over: Partial<Invocation> & Pick<Invocation, "task_id" | "agent" | "workflow_id">): Invocation {
  return {
    timestamp: iso(5_000),
    event: "agent_invocation",
    model: "mock/m",
    task_digest: "0123456789abcdef",
    keywords: ["plan"],
    tags: ["review"],
    started_at: iso(1_000),
    ended_at: iso(4_000),
    duration_seconds: 3,
    active_seconds: 2.5,
    waiting_seconds: { queue: 0.5, answer: 0 },
    outcome: "success",
    success: true,
    tokens: { input: 10, output: 5, reasoning: 0, cache_read: 2, cache_write: 0 },
    cost: 0.01,
    turns: 1,
    tool_calls: 0,
    retries: 0,
    delivery_turns: 0,
    coordination_tokens: 0,
    ...over,
  }
}

function setup(log: Logger = { log: () => {} }) {
  const exporter = new InMemorySpanExporter()
  const sink = otelSink({ endpoint: "http://127.0.0.1:1/v1/traces", exporter }, createDeps({ log, clock: { now: () => T0 + 60_000, monotonic: () => 0 } }))
  return { exporter, sink, spans: () => exporter.getFinishedSpans() }
}
const byName = (spans: ReadableSpan[], name: string) => spans.filter((s) => s.name === name)
const parentOf = (s: ReadableSpan) => s.parentSpanContext?.spanId

describe("OpenTelemetry sink", () => {
  it("a team run: one workflow root, an agent span per task under it, tool spans under their agent, GenAI attributes", async () => {
    const { sink, spans } = setup()
    const wf = "wf_abc"
    const start: WorkflowEvent = { timestamp: iso(0), event: "workflow_start", workflow_id: wf, project_name: "proj", agent_plan: ["lead", "w1", "w2"], nso: { kind: "team", team: "panel", pattern: "parallel" } }
    sink.workflow(start)
    sink.workflow({ timestamp: iso(2_000), event: "agent_handoff", workflow_id: wf, from_agent: "w1", to_agent: "w2", artifacts: ["a.md"] })
    sink.invocation(invocation({ task_id: "tsk_1", agent: "w1", workflow_id: wf, team: "panel", tool_calls: 2 }), [
      { tool: "read", startedAt: T0 + 1_500, endedAt: T0 + 1_600, ok: true },
      { tool: "bash", startedAt: T0 + 2_000, endedAt: T0 + 2_100, ok: false },
    ])
    sink.invocation(invocation({ task_id: "tsk_2", agent: "w2", workflow_id: wf, team: "panel", outcome: "failure", success: false, error: "boom" }), [])
    sink.workflow({ timestamp: iso(6_000), event: "workflow_complete", workflow_id: wf, duration_seconds: 6, success: false, agents_executed: ["w1", "w2"], nso: { kind: "team", team: "panel", pattern: "parallel", phase: "partial" } })
    await sink.flush()

    const all = spans()
    const [root] = byName(all, "invoke_workflow panel")
    expect(root).toBeDefined()
    expect(parentOf(root!)).toBeUndefined()
    expect(root!.attributes).toMatchObject({ "gen_ai.operation.name": "invoke_workflow", "gen_ai.conversation.id": wf, "nso.team": "panel", "nso.pattern": "parallel", "nso.success": false, "nso.phase": "partial" })
    expect(root!.status.code).toBe(SpanStatusCode.ERROR)
    expect(ms(root!.startTime)).toBe(T0)
    expect(ms(root!.endTime)).toBe(T0 + 6_000)
    expect(root!.events.map((e) => [e.name, e.attributes?.["nso.to_agent"]])).toEqual([["agent_handoff", "w2"]])

    const agents = all.filter((s) => s.name.startsWith("invoke_agent "))
    expect(agents.map((s) => s.name).sort()).toEqual(["invoke_agent w1", "invoke_agent w2"])
    for (const a of agents) {
      expect(parentOf(a)).toBe(root!.spanContext().spanId)
      expect(a.spanContext().traceId).toBe(root!.spanContext().traceId)
    }
    const w1 = byName(all, "invoke_agent w1")[0]!
    expect(w1.attributes).toMatchObject({
      "gen_ai.operation.name": "invoke_agent",
      "gen_ai.agent.name": "w1",
      "gen_ai.conversation.id": wf,
      "gen_ai.provider.name": "mock",
      "gen_ai.request.model": "m",
      "gen_ai.usage.input_tokens": 10,
      "gen_ai.usage.output_tokens": 5,
      "gen_ai.usage.cache_read.input_tokens": 2,
      "nso.task_id": "tsk_1",
      "nso.team": "panel",
      "nso.pattern": "parallel",
      "nso.outcome": "success",
      "nso.cost": 0.01,
      "nso.active_seconds": 2.5,
      "nso.queue_seconds": 0.5,
    })
    expect([ms(w1.startTime), ms(w1.endTime)]).toEqual([T0 + 1_000, T0 + 4_000])
    expect(w1.status.code).toBe(SpanStatusCode.UNSET)
    const w2 = byName(all, "invoke_agent w2")[0]!
    expect(w2.status).toMatchObject({ code: SpanStatusCode.ERROR, message: "boom" })

    const tools = all.filter((s) => s.name.startsWith("execute_tool "))
    expect(tools.map((s) => s.name)).toEqual(["execute_tool read", "execute_tool bash"])
    for (const t of tools) expect(parentOf(t)).toBe(w1.spanContext().spanId)
    expect(tools[0]!.attributes).toMatchObject({ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read", "gen_ai.conversation.id": wf })
    expect([ms(tools[0]!.startTime), ms(tools[0]!.endTime)]).toEqual([T0 + 1_500, T0 + 1_600])
    expect(tools[1]!.status.code).toBe(SpanStatusCode.ERROR)
    expect(new Set(all.map((s) => s.spanContext().traceId)).size).toBe(1)
  })

  it("a plain task is a workflow of one agent: its workflow span is named after the agent and parents its agent span", async () => {
    const { sink, spans } = setup()
    sink.workflow({ timestamp: iso(0), event: "workflow_start", workflow_id: "tsk_9", project_name: "proj", agent_plan: ["builder"], nso: { kind: "task" } })
    sink.invocation(invocation({ task_id: "tsk_9", agent: "builder", workflow_id: "tsk_9" }), [])
    sink.workflow({ timestamp: iso(4_000), event: "workflow_complete", workflow_id: "tsk_9", duration_seconds: 4, success: true, agents_executed: ["builder"], nso: { kind: "task" } })
    await sink.flush()
    const [root] = byName(spans(), "invoke_workflow builder")
    const [agent] = byName(spans(), "invoke_agent builder")
    expect(parentOf(agent!)).toBe(root!.spanContext().spanId)
    expect(root!.status.code).toBe(SpanStatusCode.UNSET)
    expect(root!.attributes).toMatchObject({ "gen_ai.agent.name": "builder", "nso.kind": "task" })
  })

  it("a workflow whose end never comes is ended at shutdown; nothing is recorded after", async () => {
    const { sink, spans, exporter } = setup()
    sink.workflow({ timestamp: iso(0), event: "workflow_start", workflow_id: "wf_open", project_name: "proj", agent_plan: ["w1"], nso: { kind: "team", team: "slow" } })
    await sink.flush()
    expect(spans()).toHaveLength(0)
    // Shutdown resets the in-memory exporter: keep what it got.
    const got: ReadableSpan[] = []
    const exportFn = exporter.export.bind(exporter)
    exporter.export = (s, done) => {
      got.push(...s)
      exportFn(s, done)
    }
    await sink.shutdown()
    expect(got.map((s) => s.name)).toEqual(["invoke_workflow slow"])
    expect(got[0]!.attributes["nso.unfinished"]).toBe(true)
    expect(ms(got[0]!.endTime)).toBe(T0 + 60_000)
    expect(() => sink.workflow({ timestamp: iso(1), event: "workflow_start", workflow_id: "wf_late", project_name: "p", agent_plan: [] })).not.toThrow()
    await sink.shutdown()
  })

  it("an invocation whose workflow started before this process gets a workflow span of its own", async () => {
    const { sink, spans } = setup()
    sink.invocation(invocation({ task_id: "tsk_r", agent: "w1", workflow_id: "wf_old", team: "panel" }), [])
    sink.workflow({ timestamp: iso(8_000), event: "workflow_complete", workflow_id: "wf_old", duration_seconds: 8, success: true, agents_executed: ["w1"], nso: { kind: "team", team: "panel" } })
    await sink.flush()
    const [root] = byName(spans(), "invoke_workflow panel")
    expect(root!.attributes["nso.resumed"]).toBe(true)
    expect(parentOf(byName(spans(), "invoke_agent w1")[0]!)).toBe(root!.spanContext().spanId)
  })

  it("export failures are logged once per series, never thrown", async () => {
    const lines: string[] = []
    let fail = true
    const exporter = new InMemorySpanExporter()
    const flaky: SpanExporter = {
      export: (s, done) => (fail ? done({ code: 1, error: new Error("connect ECONNREFUSED 127.0.0.1:9") }) : exporter.export(s, done)),
      shutdown: () => exporter.shutdown(),
    }
    const sink = otelSink({ endpoint: "http://127.0.0.1:9/v1/traces", exporter: flaky }, createDeps({ log: { log: (_level, message) => void lines.push(message) } }))
    const task = (id: string) => {
      sink.workflow({ timestamp: iso(0), event: "workflow_start", workflow_id: id, project_name: "p", agent_plan: ["a"], nso: { kind: "task" } })
      sink.workflow({ timestamp: iso(10), event: "workflow_complete", workflow_id: id, duration_seconds: 0.01, success: true, agents_executed: ["a"], nso: { kind: "task" } })
    }
    task("tsk_x")
    await expect(sink.flush()).resolves.toBeUndefined()
    task("tsk_y")
    await expect(sink.flush()).resolves.toBeUndefined()
    expect(lines.filter((l) => l.startsWith("OpenTelemetry export failed"))).toHaveLength(1)
    fail = false
    task("tsk_z")
    await sink.flush()
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(["invoke_workflow a"])
    expect(lines).toContain("OpenTelemetry export works again")
    await expect(sink.shutdown()).resolves.toBeUndefined()
  })
})

describe("telemetry options", () => {
  it("OTLP export is off by default; the endpoint must be an http(s) URL; the file size limit defaults to 16 MiB", () => {
    expect(Options.parse({}).telemetry).toEqual({ fileMaxBytes: 16 * 1024 * 1024 })
    expect(Options.parse({ telemetry: { otlp: { endpoint: "http://127.0.0.1:4318/v1/traces", headers: { "x-api-key": "k" } } } }).telemetry.otlp).toEqual({
      endpoint: "http://127.0.0.1:4318/v1/traces",
      headers: { "x-api-key": "k" },
    })
    expect(Options.safeParse({ telemetry: { otlp: { endpoint: "ftp://host/x" } } }).success).toBe(false)
    expect(Options.safeParse({ telemetry: { otlp: {} } }).success).toBe(false)
    expect(Options.safeParse({ telemetry: { otlp: { endpoint: "http://h/v1/traces", protocol: "grpc" } } }).success).toBe(false)
  })
})
