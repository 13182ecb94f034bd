import { readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { MockModel } from "../harness/mock-model.js"
import { readJsonl, startOpencode } from "../harness/opencode.js"
import { fmtMs, percentile, type Row, type Rec, until, allIdle } from "./util.js"

/**
 * Background jobs on a real server with the scripted model, the user paused: the job_start tool's
 * own execution, and a job's end (as its wrapper recorded it) → its completion stored in the
 * Oracle's session. Each job waits for a gate file the bench creates once the Oracle's turn is
 * over, so the figure is the end-to-completion path alone, not the turn it started in.
 */
export async function jobsBench(): Promise<Row[]> {
  const section = "jobs"
  const model = new MockModel()
  await model.start()
  const oc = await startOpencode({ modelUrl: model.url, config: { snapshot: false }, nso: { buffer: { pauseMs: 0 }, init: { sweepDelayMs: 50 }, journal: { fsync: true } } })
  try {
    const N = 20
    model.script([
      { when: { userMatch: "^job (\\d+)" }, reply: { toolCalls: [{ name: "job_start", args: { command: "while [ ! -e gate-$1 ]; do sleep 0.005; done; echo done $1", title: "bench job $1" } }] } },
      { when: { toolResult: "Started job" }, reply: { text: "ok" } },
      { when: { userMatch: "^reference (\\d+)" }, reply: { toolCalls: [{ name: "project_context", args: { action: "get" } }] } },
      { when: { toolResult: "Goal:" }, reply: { text: "ok" } },
      { when: { user: "[NSO · job" }, reply: { text: "noted" } },
    ])
    const session = (await oc.client.session.create({ body: { title: "bench jobs" } })).data!.id
    const rtt: number[] = []
    const toSession: number[] = []
    const toBuffer: number[] = []
    const journalPath = join(oc.projectDir, ".opencode/nso/journal.jsonl")
    for (let i = 0; i < N; i++) {
      // Reference: a trivial NSO tool on the same path, same moment (the machine's load shows in both).
      await oc.client.session.prompt({ path: { id: session }, body: { agent: "oracle", parts: [{ type: "text", text: `reference ${i}` }] } })
      model.requests.length = 0
      await oc.client.session.prompt({ path: { id: session }, body: { agent: "oracle", parts: [{ type: "text", text: `job ${i}` }] } })
      const r0 = model.requests.find((r) => r.lastUser === `job ${i}` && !r.lastToolResult)!
      const r1 = model.requests.find((r) => r.lastToolResult?.includes("Started job"))!
      rtt.push(r1.at - r0.respondedAt)
      await allIdle(oc)
      const started = (readJsonl(journalPath) as Rec[]).find((r) => r.e.type === "job.started" && (r.e.job as { title: string }).title === `bench job ${i}`)!
      const id = (started.e.job as { id: string }).id
      writeFileSync(join(oc.projectDir, `gate-${i}`), "")
      const exitPath = join(oc.projectDir, ".opencode/nso/jobs", id, "exit.json")
      const endedAt = await until(() => {
        try {
          return (JSON.parse(readFileSync(exitPath, "utf8")) as { endedAt: number }).endedAt
        } catch {
          return undefined
        }
      }, `job ${i}'s exit record`)
      const stored = await until(async () => {
        const msgs = (await oc.client.session.messages({ path: { id: session } })).data ?? []
        const m = msgs.find((x) => x.info.role === "user" && x.parts.some((p) => p.type === "text" && (p as { text: string }).text.includes(`Job ${id}`)))
        return m?.info.time.created
      }, `job ${i}'s completion in the Oracle's session`)
      toSession.push(stored - endedAt)
      const buffered = (readJsonl(journalPath) as Rec[]).find((r) => r.e.type === "message.buffered" && (r.e.envelope as { text: string }).text.includes(`Job ${id}`))!
      toBuffer.push(buffered.t - endedAt)
      await model.waitFor((r) => r.lastUser.includes(`Job ${id}`), 10_000).catch(() => undefined)
      await allIdle(oc)
    }
    const log = readJsonl(join(oc.projectDir, ".opencode/nso/log.jsonl")) as { tool: string; durationMs?: number }[]
    const execs = log.filter((l) => l.tool === "job_start" && l.durationMs !== undefined).map((l) => l.durationMs!)
    const reference = log.filter((l) => l.tool === "project_context" && l.durationMs !== undefined).map((l) => l.durationMs!)
    return [
      { section, figure: "job_start tool execution (before → after hook)", value: `p50 ${fmtMs(percentile(execs, 50))}`, target: "p50 ≤ 20 ms", note: `p99 ${fmtMs(percentile(execs, 99))}; spawn + journal synced before it returns; a trivial NSO tool (project_context get) in the same run: p50 ${fmtMs(percentile(reference, 50))}` },
      { section, figure: "job_start tool call (model → tool result)", value: `p50 ${fmtMs(percentile(rtt, 50))}`, note: `p99 ${fmtMs(percentile(rtt, 99))}` },
      { section, figure: "job ended → completion in the Oracle's buffer", value: `p50 ${fmtMs(percentile(toBuffer, 50))}`, note: `p99 ${fmtMs(percentile(toBuffer, 99))}; end time from the wrapper's record` },
      { section, figure: "job ended → completion stored in the Oracle's session (user paused)", value: `p50 ${fmtMs(percentile(toSession, 50))}`, target: "p50 ≤ 100 ms", note: `p99 ${fmtMs(percentile(toSession, 99))}` },
    ]
  } finally {
    await oc.dispose()
    await model.stop()
  }
}
