import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from "@opentelemetry/api"
import { OTLPTraceExporter } from "@opentelemetry/exporter-trace-otlp-http"
import { resourceFromAttributes } from "@opentelemetry/resources"
import { BasicTracerProvider, BatchSpanProcessor, type ReadableSpan, type SpanExporter } from "@opentelemetry/sdk-trace-base"
import type { Deps } from "../deps.js"
import type { TelemetrySink, ToolCall } from "./recorder.js"
import type { Invocation, WorkflowEvent } from "./schema.js"

/**
 * The optional OpenTelemetry export: the same workflow events and invocations as the telemetry
 * files, as traces following the GenAI semantic conventions, sent over OTLP/HTTP (JSON) to a
 * configured endpoint. One trace per workflow (a team run, or a plain delegated task):
 *
 *   invoke_workflow <team or agent>          workflow_start … workflow_complete (root)
 *   └─ invoke_agent <agent>                  one per task (member, coordinator, synthesis)
 *      └─ execute_tool <tool>                one per tool call the task's agent made
 *
 * An invocation arrives when its task ends, so agent and tool spans are made then, with their
 * past start and end times, under the workflow span (opened at workflow_start). Attributes use
 * the `gen_ai.*` names; what only NSO knows is under `nso.*`. Loaded with a dynamic import only
 * when configured. Nothing here throws into NSO: export failures are logged.
 */

// The GenAI attribute names (semantic conventions, still "development": copied, as that
// package advises for incubating names, rather than imported).
const GEN_AI = {
  operation: "gen_ai.operation.name",
  agentName: "gen_ai.agent.name",
  agentId: "gen_ai.agent.id",
  workflowName: "gen_ai.workflow.name",
  conversation: "gen_ai.conversation.id",
  provider: "gen_ai.provider.name",
  requestModel: "gen_ai.request.model",
  responseModel: "gen_ai.response.model",
  inputTokens: "gen_ai.usage.input_tokens",
  outputTokens: "gen_ai.usage.output_tokens",
  cacheRead: "gen_ai.usage.cache_read.input_tokens",
  cacheWrite: "gen_ai.usage.cache_creation.input_tokens",
  reasoning: "gen_ai.usage.reasoning.output_tokens",
  toolName: "gen_ai.tool.name",
  toolType: "gen_ai.tool.type",
} as const

export interface OtelOptions {
  /** OTLP/HTTP traces URL, e.g. `http://127.0.0.1:4318/v1/traces`. */
  endpoint: string
  headers?: Record<string, string>
  /** `service.name` of the resource (default `opencode-nso`). */
  serviceName?: string
  /** Export through this instead of OTLP/HTTP (tests: an in-memory exporter). */
  exporter?: SpanExporter
  /** How long finished spans wait before a batch is sent (ms, default 2000). */
  batchDelayMs?: number
}

export type OtelSink = TelemetrySink & {
  /** Sends every finished span now. Never throws. */
  flush(): Promise<void>
  /** Ends workflow spans still open (their end never came), sends everything, stops. Never throws. */
  shutdown(): Promise<void>
}

interface Flow {
  span: Span
  ctx: Context
  /** Team name, or the agent of a plain task. */
  name: string
  team?: string
  pattern?: string
  open: boolean
}

/** Most ended workflows kept (for an invocation that arrives after its workflow's end). */
const KEEP_ENDED = 500
/** Longest wait for a flush or shutdown before giving up on it (ms). */
const FLUSH_LIMIT_MS = 3_000

export function otelSink(opts: OtelOptions, deps: Pick<Deps, "log" | "clock" | "timers">): OtelSink {
  const exporter = new LoggedExporter(
    opts.exporter ?? new OTLPTraceExporter({ url: opts.endpoint, headers: { ...(opts.headers ?? {}) }, timeoutMillis: 10_000 }),
    deps.log,
    opts.endpoint,
  )
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ "service.name": opts.serviceName ?? "opencode-nso" }),
    spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: opts.batchDelayMs ?? 2_000 })],
  })
  const tracer: Tracer = provider.getTracer("opencode-nso")
  const flows = new Map<string, Flow>()
  let stopped = false

  const at = (iso: string) => {
    const ms = Date.parse(iso)
    return Number.isFinite(ms) ? ms : deps.clock.now()
  }

  function openFlow(id: string, name: string, start: number, attrs: Attributes, extra: Pick<Flow, "team" | "pattern">): Flow {
    const span = tracer.startSpan(
      `invoke_workflow ${name}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: start,
        root: true,
        attributes: clean({ [GEN_AI.operation]: "invoke_workflow", [GEN_AI.workflowName]: name, [GEN_AI.agentName]: name, [GEN_AI.conversation]: id, ...attrs }),
      },
      ROOT_CONTEXT,
    )
    const flow: Flow = { span, ctx: trace.setSpan(ROOT_CONTEXT, span), name, open: true, ...extra }
    flows.set(id, flow)
    return flow
  }

  function closeFlow(id: string, f: Flow, end: number): void {
    f.open = false
    f.span.end(end)
    // Keep its context a while (a late invocation still finds its parent), and no more.
    flows.delete(id)
    flows.set(id, f)
    if (flows.size > KEEP_ENDED)
      for (const [k, v] of flows) {
        if (flows.size <= KEEP_ENDED) break
        if (!v.open) flows.delete(k)
      }
  }

  function workflow(e: WorkflowEvent): void {
    if (stopped) return
    switch (e.event) {
      case "workflow_start": {
        const team = e.nso?.kind === "team" ? e.nso.team : undefined
        const name = team ?? e.agent_plan[0] ?? e.workflow_id
        openFlow(
          e.workflow_id,
          name,
          at(e.timestamp),
          {
            "nso.kind": e.nso?.kind,
            "nso.team": team,
            "nso.pattern": e.nso?.pattern,
            "nso.session": e.nso?.session,
            "nso.project": e.project_name,
            "nso.agent_plan": e.agent_plan,
          },
          { team, pattern: e.nso?.pattern },
        )
        return
      }
      case "agent_handoff": {
        const f = flows.get(e.workflow_id)
        if (f?.open) f.span.addEvent("agent_handoff", { "nso.from_agent": e.from_agent, "nso.to_agent": e.to_agent, "nso.artifacts": e.artifacts }, at(e.timestamp))
        return
      }
      case "workflow_complete": {
        const end = at(e.timestamp)
        // Started before this process (a restart): the span is made now, its start from the duration.
        const f =
          flows.get(e.workflow_id) ??
          openFlow(e.workflow_id, e.nso?.team ?? e.agents_executed[0] ?? e.workflow_id, end - e.duration_seconds * 1000, { "nso.kind": e.nso?.kind, "nso.team": e.nso?.team, "nso.pattern": e.nso?.pattern }, {
            team: e.nso?.team,
            pattern: e.nso?.pattern,
          })
        if (!f.open) return
        f.span.setAttributes(clean({ "nso.success": e.success, "nso.phase": e.nso?.phase, "nso.duration_seconds": e.duration_seconds, "nso.agents_executed": e.agents_executed }))
        if (!e.success) f.span.setStatus({ code: SpanStatusCode.ERROR, message: e.nso?.phase ? `workflow ${e.nso.phase}` : "workflow failed" })
        closeFlow(e.workflow_id, f, end)
        return
      }
    }
  }

  function invocation(r: Invocation, tools: readonly ToolCall[]): void {
    if (stopped) return
    const start = at(r.started_at)
    // Its workflow started before this process (a restart): a workflow span from this task on.
    const f = flows.get(r.workflow_id) ?? openFlow(r.workflow_id, r.team ?? r.agent, start, { "nso.kind": r.team ? "team" : "task", "nso.team": r.team, "nso.resumed": true }, { team: r.team })
    const slash = r.model?.indexOf("/") ?? -1
    const provider = r.model && slash > 0 ? r.model.slice(0, slash) : undefined
    const model = r.model ? (slash > 0 ? r.model.slice(slash + 1) : r.model) : undefined
    const common = { [GEN_AI.conversation]: r.workflow_id, "nso.task_id": r.task_id }
    const span = tracer.startSpan(
      `invoke_agent ${r.agent}`,
      {
        kind: SpanKind.INTERNAL,
        startTime: start,
        attributes: clean({
          ...common,
          [GEN_AI.operation]: "invoke_agent",
          [GEN_AI.agentName]: r.agent,
          [GEN_AI.agentId]: r.task_id,
          [GEN_AI.provider]: provider,
          [GEN_AI.requestModel]: model,
          [GEN_AI.responseModel]: model,
          [GEN_AI.inputTokens]: r.tokens.input,
          [GEN_AI.outputTokens]: r.tokens.output,
          [GEN_AI.cacheRead]: r.tokens.cache_read,
          [GEN_AI.cacheWrite]: r.tokens.cache_write,
          [GEN_AI.reasoning]: r.tokens.reasoning,
          "nso.team": r.team ?? f.team,
          "nso.pattern": f.pattern,
          "nso.model": r.model,
          "nso.outcome": r.outcome,
          "nso.error": r.error,
          "nso.cost": r.cost,
          "nso.duration_seconds": r.duration_seconds,
          "nso.active_seconds": r.active_seconds,
          "nso.queue_seconds": r.waiting_seconds.queue,
          "nso.answer_seconds": r.waiting_seconds.answer,
          "nso.turns": r.turns,
          "nso.tool_calls": r.tool_calls,
          "nso.retries": r.retries,
          "nso.delivery_turns": r.delivery_turns,
          "nso.coordination_tokens": r.coordination_tokens,
          "nso.task_digest": r.task_digest,
          "nso.keywords": r.keywords,
          "nso.tags": r.tags,
          "nso.domain": r.domain,
        }),
      },
      f.ctx,
    )
    if (r.outcome === "failure") {
      span.setStatus({ code: SpanStatusCode.ERROR, ...(r.error ? { message: r.error } : {}) })
      span.setAttribute("error.type", "task_failed")
    }
    const agentCtx = trace.setSpan(f.ctx, span)
    for (const t of tools) {
      const ts = tracer.startSpan(
        `execute_tool ${t.tool}`,
        { kind: SpanKind.INTERNAL, startTime: t.startedAt, attributes: { ...common, [GEN_AI.operation]: "execute_tool", [GEN_AI.toolName]: t.tool, [GEN_AI.toolType]: "function", [GEN_AI.agentName]: r.agent } },
        agentCtx,
      )
      if (!t.ok) {
        ts.setStatus({ code: SpanStatusCode.ERROR })
        ts.setAttribute("error.type", "tool_error")
      }
      ts.end(Math.max(t.startedAt, t.endedAt))
    }
    span.end(Math.max(start, at(r.ended_at)))
  }

  /** Waits for `p` at most FLUSH_LIMIT_MS; a failure or timeout is logged, never thrown. */
  async function bounded(p: Promise<unknown>, what: string): Promise<void> {
    let timer: ReturnType<Deps["timers"]["setTimeout"]> | undefined
    const timeout = new Promise<"timeout">((resolve) => (timer = deps.timers.setTimeout(() => resolve("timeout"), FLUSH_LIMIT_MS)))
    try {
      const r = await Promise.race([p.then(() => "ok" as const), timeout])
      if (r === "timeout") deps.log.log("warn", `OpenTelemetry ${what} did not finish in ${FLUSH_LIMIT_MS} ms; spans may be lost`, { endpoint: opts.endpoint })
    } catch (err) {
      deps.log.log("warn", `OpenTelemetry ${what} failed`, { endpoint: opts.endpoint, error: String(err) })
    } finally {
      if (timer !== undefined) deps.timers.clearTimeout(timer)
    }
  }

  return {
    workflow,
    invocation,
    flush: () => bounded(provider.forceFlush(), "flush"),
    async shutdown() {
      if (stopped) return
      const now = deps.clock.now()
      for (const [id, f] of [...flows]) {
        if (!f.open) continue
        f.span.setAttribute("nso.unfinished", true)
        closeFlow(id, f, now)
      }
      stopped = true
      await bounded(provider.shutdown(), "shutdown")
    },
  }
}

/** Drops undefined values (the API would warn about them). */
function clean(a: Record<string, Attributes[string]>): Attributes {
  const out: Attributes = {}
  for (const [k, v] of Object.entries(a)) if (v !== undefined && v !== null) out[k] = v
  return out
}

/** Passes spans to the real exporter; logs the first failure of a series and the recovery. */
class LoggedExporter implements SpanExporter {
  private failing = false
  constructor(
    private readonly inner: SpanExporter,
    private readonly log: Deps["log"],
    private readonly endpoint: string,
  ) {}

  export(spans: ReadableSpan[], done: Parameters<SpanExporter["export"]>[1]): void {
    try {
      this.inner.export(spans, (result) => {
        // ExportResultCode.SUCCESS is 0.
        if (result.code !== 0) {
          if (!this.failing) this.log.log("warn", "OpenTelemetry export failed; spans of this batch are dropped", { endpoint: this.endpoint, spans: spans.length, error: String(result.error ?? "unknown") })
          this.failing = true
        } else if (this.failing) {
          this.failing = false
          this.log.log("info", "OpenTelemetry export works again", { endpoint: this.endpoint })
        }
        done(result)
      })
    } catch (err) {
      this.log.log("warn", "OpenTelemetry export failed", { endpoint: this.endpoint, error: String(err) })
      done({ code: 1, error: err as Error })
    }
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown()
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve()
  }
}
