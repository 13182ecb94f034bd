import { join } from "node:path"
import { ORACLE_TOOLS, BACKGROUND_TOOLS } from "../../plugin/opencode/shapes.js"
import { MockModel } from "../harness/mock-model.js"
import { readJsonl, startOpencode } from "../harness/opencode.js"
import { fmtBytes, fmtMs, percentile, type Row, type Rec, allIdle } from "./util.js"

/**
 * Delegation on a real server with the scripted model: delegate latency, child done → result
 * latency, fan-out efficiency, model requests NSO causes, and tool-schema bytes.
 */
export async function delegationBench(opts: { snapshot: boolean }): Promise<Row[]> {
  const rows: Row[] = []
  const section = opts.snapshot ? "live" : "live, no snapshots"
  const model = new MockModel()
  await model.start()
  // pauseMs 0: the user is paused, so a result goes straight to the Oracle (the figure to beat).
  // With snapshots (OpenCode's default in a git project) every turn also snapshots the work tree.
  const oc = await startOpencode({
    modelUrl: model.url,
    config: opts.snapshot ? {} : { snapshot: false },
    nso: { buffer: { pauseMs: 0 }, init: { sweepDelayMs: 50 }, tasks: { concurrency: 8 }, journal: { fsync: true } },
  })
  try {
    const N = 20
    model.script([
      { when: { userMatch: "^run job (\\d+)" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "bench job $1", title: "job $1" } }] } },
      { when: { userMatch: "^baseline (\\d+)" }, reply: { toolCalls: [{ name: "project_context", args: { action: "get" } }] } },
      { when: { toolResult: "Started task" }, reply: { text: "ok" } },
      { when: { toolResult: "Goal:" }, reply: { text: "ok" } },
      { when: { userMatch: "^bench job (\\d+)" }, reply: { text: "bench result $1" } },
      { when: { userMatch: "^fan job (\\d+)" }, reply: { text: "fan result $1", delayMs: 1000 } },
      { when: { user: "fan out" }, reply: { toolCalls: Array.from({ length: 8 }, (_, i) => ({ name: "delegate", args: { agent: "builder", prompt: `fan job ${i}`, title: `fan ${i}` } })) } },
      { when: { user: "bench result" }, reply: { text: "noted" } },
      { when: { user: "fan result" }, reply: { text: "noted" } },
    ])
    const session = (await oc.client.session.create({ body: { title: "bench" } })).data!.id
    const delegateRtt: number[] = []
    const baselineRtt: number[] = []
    const toBuffer: number[] = []
    const toOracle: number[] = []
    for (let i = 0; i < N; i++) {
      // Baseline: a trivial NSO tool, same path through OpenCode.
      model.requests.length = 0
      await oc.client.session.prompt({ path: { id: session }, body: { agent: "oracle", parts: [{ type: "text", text: `baseline ${i}` }] } })
      const b0 = model.requests.find((r) => r.lastUser === `baseline ${i}` && !r.lastToolResult)!
      const b1 = model.requests.find((r) => r.lastToolResult?.startsWith("Goal:"))!
      baselineRtt.push(b1.at - b0.respondedAt)

      model.requests.length = 0
      await oc.client.session.prompt({ path: { id: session }, body: { agent: "oracle", parts: [{ type: "text", text: `run job ${i}` }] } })
      const d0 = model.requests.find((r) => r.lastUser === `run job ${i}` && !r.lastToolResult)!
      const d1 = model.requests.find((r) => r.lastToolResult?.includes("Started task"))!
      delegateRtt.push(d1.at - d0.respondedAt)
      const child = await model.waitFor((r) => r.lastUser === `bench job ${i}`)
      while (!child.respondedAt) await new Promise((r) => setTimeout(r, 5))
      const next = await model.waitFor((r) => r.lastUser.includes(`bench result ${i}`))
      toOracle.push(next.at - child.respondedAt)
      const recs = readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]
      const buffered = recs.find((r) => r.e.type === "message.buffered" && (r.e.envelope as { text: string }).text === `bench result ${i}`)!
      toBuffer.push(buffered.t - child.respondedAt)
      await allIdle(oc)
    }
    const execs = (readJsonl(join(oc.projectDir, ".opencode/nso/log.jsonl")) as { tool: string; durationMs?: number }[])
      .filter((l) => l.tool === "delegate" && l.durationMs !== undefined)
      .map((l) => l.durationMs!)
    rows.push({ section, figure: "delegate tool execution (before → after hook)", value: `p50 ${fmtMs(percentile(execs, 50))}`, target: "OpenCode 14–17 ms", note: `p99 ${fmtMs(percentile(execs, 99))}; journal synced before it returns` })
    rows.push({ section, figure: "delegate tool call (model → tool result)", value: `p50 ${fmtMs(percentile(delegateRtt, 50))}`, target: "p50 ≤ 100 ms", note: `trivial tool ${fmtMs(percentile(baselineRtt, 50))}; delegate adds ${fmtMs(percentile(delegateRtt, 50) - percentile(baselineRtt, 50))}` })
    rows.push({ section, figure: "child done → result in Oracle's buffer", value: `p50 ${fmtMs(percentile(toBuffer, 50))}`, target: "p50 ≤ 100, p99 ≤ 500 ms", note: `p99 ${fmtMs(percentile(toBuffer, 99))}` })
    rows.push({ section, figure: "child done → Oracle's next model request (user paused)", value: `p50 ${fmtMs(percentile(toOracle, 50))}`, target: "OpenCode 53–60 ms", note: `p99 ${fmtMs(percentile(toOracle, 99))}` })

    // Fan-out: 8 tasks whose model takes 1 s each.
    model.requests.length = 0
    const fanSession = (await oc.client.session.create({ body: { title: "fan" } })).data!.id
    await oc.client.session.prompt({ path: { id: fanSession }, body: { agent: "oracle", parts: [{ type: "text", text: "fan out" }] } })
    const start = model.requests.find((r) => r.lastUser === "fan out" && !r.lastToolResult)!.respondedAt
    const fanResults = () =>
      (readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]).filter(
        (r) => r.e.type === "message.buffered" && /^fan result \d$/.test((r.e.envelope as { text: string }).text),
      )
    for (let i = 0; i < 600 && fanResults().length < 8; i++) await new Promise((r) => setTimeout(r, 20))
    // The last result asks the Oracle for a reply: wait for that turn before counting.
    await model.waitFor((r) => r.lastUser.includes("fan result"), 10_000).catch(() => undefined)
    await allIdle(oc)
    const fanDone = fanResults().map((r) => r.t)
    const firstChild = Math.min(...model.requests.filter((r) => /^fan job \d/.test(r.lastUser)).map((r) => r.at))
    const wall = Math.max(...fanDone) - start
    rows.push({ section, figure: "fan-out of 8 tasks × 1 s model: wall / ideal", value: (wall / 1000).toFixed(3), target: "≤ 1.10", note: `${fmtMs(wall)} for ${fanDone.length} results; first child model call ${fmtMs(firstChild - start)} after the delegate calls` })

    // Model requests NSO causes, beyond each task's own work.
    const fanReqs = model.requests.filter((r) => !r.isTitle)
    const oracleOwn = 2 // the delegate call and its follow-up
    const childOwn = fanReqs.filter((r) => /^fan job \d/.test(r.lastUser)).length
    const caused = fanReqs.length - oracleOwn - childOwn
    rows.push({ section, figure: "model requests NSO causes per task (fan-out of 8)", value: (caused / 8).toFixed(2), target: "0 beyond one delivery", note: `${caused} delivery turn(s) for 8 results` })

    // Tool-schema bytes NSO adds to each request.
    const oracleReq = model.requests.find((r) => r.lastUser === "fan out")!
    const builderReq = model.requests.find((r) => /^fan job \d/.test(r.lastUser))!
    const sum = (sizes: Record<string, number>, names: readonly string[]) => names.reduce((n, t) => n + (sizes[t] ?? 0), 0)
    rows.push({ section, figure: "NSO tool-schema bytes per Oracle request", value: fmtBytes(sum(oracleReq.toolSizes, [...ORACLE_TOOLS])), target: "OpenCode +491 B", note: `delegate alone ${fmtBytes(oracleReq.toolSizes.delegate ?? 0)}` })
    rows.push({ section, figure: "NSO tool-schema bytes per Builder request", value: fmtBytes(sum(builderReq.toolSizes, [...BACKGROUND_TOOLS])), note: `ask_user ${fmtBytes(builderReq.toolSizes.ask_user ?? 0)}` })
  } finally {
    await oc.dispose()
    await model.stop()
  }
  return rows
}
