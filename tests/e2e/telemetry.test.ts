import { join } from "node:path"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { readJsonl, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, liveServer, until } from "./helpers.js"

/** A past task as the recorder writes it. */
function past(i: number, agent: string, ok: boolean, daysAgo: number) {
  const end = Date.now() - daysAgo * 86_400_000
  return JSON.stringify({
    timestamp: new Date(end).toISOString(),
    event: "agent_invocation",
    task_id: `tsk_seed${agent}${i}`,
    agent,
    task_digest: `digest${i}`,
    keywords: ["database", "schema", "migration", "postgres"],
    tags: [],
    workflow_id: `tsk_seed${agent}${i}`,
    started_at: new Date(end - 60_000).toISOString(),
    ended_at: new Date(end).toISOString(),
    duration_seconds: 60,
    active_seconds: 55,
    waiting_seconds: { queue: 5, answer: 0 },
    outcome: ok ? "success" : "failure",
    success: ok,
    tokens: { input: 1000, output: 200, reasoning: 0, cache_read: 0, cache_write: 0 },
    cost: 0,
    turns: 3,
    tool_calls: 4,
    retries: 0,
    delivery_turns: 0,
    coordination_tokens: 0,
  })
}

describe("telemetry on a real server", () => {
  // History: the analyst did database schema migrations well; the builder failed at them.
  const history = [...[0, 1, 2, 3, 4, 5].map((i) => past(i, "analyst", true, i + 1)), ...[0, 1, 2, 3].map((i) => past(i, "builder", false, i + 1))].join("\n") + "\n"
  const srv = liveServer({
    nso: { buffer: { pauseMs: 300 }, init: { sweepDelayMs: 50 } },
    files: { ".opencode/nso/telemetry/agent_invocations.jsonl": history },
  })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })
  afterEach(async () => {
    await allIdle(oc.client, "sessions idle before the next test")
    model.reset()
  })

  it('agent: "auto" picks the agent with the better history for the task and says why; the task is logged as an invocation', async () => {
    model.script([
      { when: { user: "plan the migration" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "auto", prompt: "Plan the Postgres database schema migration for the orders table" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "Postgres database schema migration" }, reply: { text: "migration planned" }, times: 1 },
      { when: { user: "migration planned" }, reply: { text: "Done." } },
    ])
    const root = (await oc.client.session.create({ body: { title: "auto" } })).data!.id
    await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "plan the migration" }] } })
    const result = model.requests.find((r) => r.lastToolResult?.includes("Started task"))!
    expect(result.lastToolResult).toMatch(/Started task tsk_\w+ \(analyst: .*Chose analyst: best record for this kind of task — 100% success on 6 similar task\(s\)/)
    const inv = await until(() => {
      const lines = readJsonl(join(oc.projectDir, ".opencode/nso/telemetry/agent_invocations.jsonl")) as { agent: string; task_id: string; keywords: string[]; outcome: string }[]
      return lines.find((l) => l.agent === "analyst" && !l.task_id.startsWith("tsk_seed"))
    }, "the new task's invocation line")
    expect(inv.outcome).toBe("success")
    expect(inv.keywords).toEqual(expect.arrayContaining(["postgres", "database", "schema", "migration"]))
  })
})
