import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { join } from "node:path"
import { gunzipSync } from "node:zlib"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import type { RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, liveServer, until } from "./helpers.js"

/**
 * The optional OpenTelemetry export on a real server: NSO sends OTLP/HTTP (JSON) to a receiver on
 * 127.0.0.1 that decodes every ExportTraceServiceRequest, and a parallel team's run arrives as one
 * trace: an invoke_workflow root, an invoke_agent span per task under it, execute_tool spans under
 * the agent that called the tool.
 */

type AnyValue = { stringValue?: string; intValue?: number | string; doubleValue?: number; boolValue?: boolean; arrayValue?: { values?: AnyValue[] } }
type OtlpSpan = {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  startTimeUnixNano: string | number
  endTimeUnixNano: string | number
  attributes?: { key: string; value: AnyValue }[]
  status?: { code?: number }
}
type ExportTraceServiceRequest = {
  resourceSpans?: { resource?: { attributes?: { key: string; value: AnyValue }[] }; scopeSpans?: { spans?: OtlpSpan[] }[] }[]
}
type Span = { traceId: string; spanId: string; parentSpanId: string; name: string; start: number; end: number; attrs: Record<string, unknown>; service: unknown }

function plain(v: AnyValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(plain)
  return undefined
}
const attrsOf = (list: { key: string; value: AnyValue }[] = []) => Object.fromEntries(list.map((a) => [a.key, plain(a.value)]))

/** A local OTLP/HTTP receiver: decodes what arrives, answers as a collector does. */
class Receiver {
  readonly spans: Span[] = []
  readonly requests: { path: string; contentType: string }[] = []
  private server: Server | undefined
  url = ""

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = []
      req.on("data", (c: Buffer) => chunks.push(c))
      req.on("end", () => {
        try {
          let body = Buffer.concat(chunks)
          if (req.headers["content-encoding"] === "gzip") body = gunzipSync(body)
          this.requests.push({ path: req.url ?? "", contentType: String(req.headers["content-type"] ?? "") })
          const msg = JSON.parse(body.toString("utf8")) as ExportTraceServiceRequest
          for (const rs of msg.resourceSpans ?? []) {
            const service = attrsOf(rs.resource?.attributes)["service.name"]
            for (const ss of rs.scopeSpans ?? [])
              for (const s of ss.spans ?? [])
                this.spans.push({
                  traceId: s.traceId,
                  spanId: s.spanId,
                  parentSpanId: s.parentSpanId ?? "",
                  name: s.name,
                  start: Number(BigInt(s.startTimeUnixNano) / 1_000_000n),
                  end: Number(BigInt(s.endTimeUnixNano) / 1_000_000n),
                  attrs: attrsOf(s.attributes),
                  service,
                })
          }
          res.writeHead(200, { "content-type": "application/json" }).end("{}")
        } catch (err) {
          res.writeHead(400).end(String(err))
        }
      })
    })
    await new Promise<void>((resolve) => this.server!.listen(0, "127.0.0.1", resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/v1/traces`
  }

  async stop(): Promise<void> {
    if (!this.server) return
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server!.close(() => resolve()))
  }
}

const worker = (n: string) => ({ description: `Worker ${n}`, prompt: `You are worker ${n}.` })

describe("OpenTelemetry export on a real server", () => {
  const receiver = new Receiver()
  // The receiver's URL is known once it listens: it starts (and its URL goes into the options)
  // before the server, and stops after it (hooks registered first run first, and end last).
  const otlp = { endpoint: "" }
  beforeAll(async () => {
    await receiver.start()
    otlp.endpoint = receiver.url
  })
  afterAll(() => receiver.stop())
  const srv = liveServer({
    nso: {
      buffer: { pauseMs: 300 },
      init: { sweepDelayMs: 50 },
      tasks: { concurrency: 8 },
      telemetry: { otlp },
      agents: {
        w1: worker("w1"),
        w2: worker("w2"),
        lead: { description: "Leads a team", prompt: "You lead the team.", delegates: true, role: "coordinator" },
      },
      teams: {
        panel: { description: "Two workers at once, a lead sums up", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1" }, { agent: "w2" }] },
      },
    },
    files: { "notes/otel-input.txt": "OTEL-FILE-CONTENT: the plan has three parts.\n" },
  })
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })

  it("a parallel team's run arrives as one trace: workflow root, an agent span per task, tool spans under their agent, GenAI attributes", async () => {
    srv.model.script([
      { when: { user: "assess with the panel" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "panel", prompt: "assess the plan" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "The panel is on it." }, times: 1 },
      { when: { toolResult: "OTEL-FILE-CONTENT" }, reply: { text: "finding from w1: three parts" }, times: 1 },
      { when: { user: "You synthesise this team's work" }, reply: { text: "PANEL SYNTHESIS: both agree.\nDisagreements: none" }, times: 1 },
      { when: { userMatch: "You are w1[,.]" }, reply: { toolCalls: [{ name: "read", args: { filePath: join(oc.projectDir, "notes/otel-input.txt") } }] }, times: 1 },
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "finding from $1", delayMs: 300 } },
      { when: { user: "PANEL SYNTHESIS" }, reply: { text: "The panel agrees." } },
    ])
    const root = (await oc.client.session.create({ body: { title: "otel" } })).data!.id
    await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "assess with the panel" }] } })

    const names = () => receiver.spans.map((s) => s.name).sort().join(", ") || "no spans"
    // The workflow span is exported when the run ends; the three tasks' spans before or with it.
    const spans = await until(
      () => {
        const wf = receiver.spans.filter((s) => s.name === "invoke_workflow panel")
        const agents = receiver.spans.filter((s) => s.name.startsWith("invoke_agent "))
        const tools = receiver.spans.filter((s) => s.name.startsWith("execute_tool "))
        return wf.length >= 1 && agents.length >= 3 && tools.length >= 1 && receiver.spans
      },
      "the panel's workflow, three agent spans and a tool span at the OTLP receiver",
      { saw: names },
    )
    await allIdle(oc.client)

    expect(receiver.requests.every((r) => r.path === "/v1/traces" && r.contentType.startsWith("application/json"))).toBe(true)
    const roots = spans.filter((s) => s.name.startsWith("invoke_workflow "))
    expect(roots).toHaveLength(1)
    const wf = roots[0]!
    expect(wf.parentSpanId).toBe("")
    expect(wf.service).toBe("opencode-nso")
    const runId = wf.attrs["gen_ai.conversation.id"] as string
    expect(runId).toMatch(/^wf_/)
    expect(wf.attrs).toMatchObject({ "gen_ai.operation.name": "invoke_workflow", "nso.team": "panel", "nso.pattern": "parallel", "nso.success": true, "nso.phase": "completed" })

    // One agent span per task (two members, the lead's synthesis), each a child of the workflow span.
    const agents = spans.filter((s) => s.name.startsWith("invoke_agent "))
    expect(agents.map((s) => s.name).sort()).toEqual(["invoke_agent lead", "invoke_agent w1", "invoke_agent w2"])
    for (const a of agents) {
      expect(a.parentSpanId, a.name).toBe(wf.spanId)
      expect(a.traceId).toBe(wf.traceId)
      expect(a.start).toBeGreaterThanOrEqual(wf.start)
      expect(a.end).toBeLessThanOrEqual(wf.end)
      const turns = a.attrs["nso.turns"] as number
      expect(turns, a.name).toBeGreaterThanOrEqual(1)
      // The scripted model reports 10 tokens in and 5 out per reply.
      expect(a.attrs, a.name).toMatchObject({
        "gen_ai.operation.name": "invoke_agent",
        "gen_ai.agent.name": a.name.slice("invoke_agent ".length),
        "gen_ai.conversation.id": runId,
        "gen_ai.provider.name": "mock",
        "gen_ai.request.model": "m",
        "gen_ai.response.model": "m",
        "gen_ai.usage.input_tokens": 10 * turns,
        "gen_ai.usage.output_tokens": 5 * turns,
        "nso.team": "panel",
        "nso.outcome": "success",
      })
      expect(a.attrs["nso.task_id"]).toMatch(/^tsk_/)
      expect(typeof a.attrs["nso.active_seconds"]).toBe("number")
    }
    const w1 = agents.find((a) => a.name === "invoke_agent w1")!
    expect(w1.attrs["nso.turns"]).toBe(2) // the read, then the answer
    expect(agents.find((a) => a.name === "invoke_agent w2")!.attrs).toMatchObject({ "nso.turns": 1, "gen_ai.usage.input_tokens": 10, "gen_ai.usage.output_tokens": 5 })

    // The read w1 made: a tool span under w1's agent span, within its time.
    const tools = spans.filter((s) => s.name.startsWith("execute_tool "))
    const read = tools.find((t) => t.name === "execute_tool read")
    expect(read, names()).toBeDefined()
    for (const t of tools) {
      expect(t.traceId).toBe(wf.traceId)
      expect(agents.map((a) => a.spanId), t.name).toContain(t.parentSpanId)
    }
    expect(read!.parentSpanId).toBe(w1.spanId)
    expect(read!.attrs).toMatchObject({ "gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "read", "gen_ai.conversation.id": runId, "nso.task_id": w1.attrs["nso.task_id"] })
    expect(read!.start).toBeGreaterThanOrEqual(w1.start)
    expect(read!.end).toBeLessThanOrEqual(w1.end)
    expect(new Set(spans.map((s) => s.traceId)).size).toBe(1)
  })
})
