import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { readJsonl, REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, journal, liveServer, newSession, ownServers, prompt, transcript, until } from "./helpers.js"
import { LIMITS, remainingMs } from "./limits.js"

const run = promisify(execFile)

type Run = { id: string; team: string; phase: string; handoffs: { fromAgent: string; toAgent: string; artifacts: string[] }[]; result?: string }
/** The team runs as the journal has them now. */
function runs(oc: RunningOpencode): Run[] {
  const out = new Map<string, Run>()
  for (const r of journal(oc)) {
    if (r.e.type === "workflow.created") out.set((r.e.workflow as Run).id, { ...(r.e.workflow as Run) })
    if (r.e.type === "workflow.updated") Object.assign(out.get(r.e.id as string) ?? {}, r.e.patch)
    if (r.e.type === "workflow.handoff") out.get(r.e.id as string)?.handoffs.push(r.e.handoff as Run["handoffs"][number])
  }
  return [...out.values()]
}
const ended = (oc: RunningOpencode, team: string) => runs(oc).find((r) => r.team === team && ["completed", "partial", "failed", "cancelled"].includes(r.phase))


/** Messages in the Oracle's session that NSO delivered from `from`. */
async function deliveredFrom(oc: RunningOpencode, sessionId: string, from: string) {
  return (await transcript(oc.client, sessionId)).filter((m) => m.nso?.from === from)
}

const worker = (n: string) => ({ description: `Worker ${n}`, prompt: `You are worker ${n}.` })

describe("teams on a real server", () => {
  const srv = liveServer({
    nso: {
      buffer: { pauseMs: 300 },
      init: { sweepDelayMs: 50 },
      tasks: { concurrency: 8 },
      agents: {
        w1: worker("w1"),
        w2: worker("w2"),
        w3: worker("w3"),
        w4: worker("w4"),
        lead: { description: "Leads a team", prompt: "You lead the team.", delegates: true, role: "coordinator" },
        boss: { description: "Leads the leads", prompt: "You lead the organisation.", delegates: true, role: "coordinator" },
      },
      teams: {
        panel: { description: "Three workers at once, a lead sums up", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1" }, { agent: "w2" }, { agent: "w3" }] },
        chain: {
          description: "Three workers one after another",
          pattern: "sequential",
          members: [
            { agent: "w3", priority: 3 },
            { agent: "w1", priority: 1 },
            { agent: "w2", priority: 2 },
          ],
        },
        crew: { description: "A lead assigns work to two workers", pattern: "coordinator_worker", coordinator: "lead", members: [{ agent: "w1", role: "first" }, { agent: "w2", role: "second" }] },
        org: { description: "A boss over the crew and one more worker", pattern: "hierarchical", coordinator: "boss", members: [{ team: "crew", role: "the crew" }, { agent: "w3" }], rules: { max_depth: 1 } },
        timed: { description: "Two workers with a time limit", pattern: "parallel", members: [{ agent: "w1" }, { agent: "w4" }], rules: { timeout_per_agent_ms: 5000, escalation: "on_failure" } },
        peers: { description: "Three peers", pattern: "peer_to_peer", members: [{ agent: "w1", role: "rows" }, { agent: "w2", role: "columns" }, { agent: "w3", role: "indexes" }] },
        slow: { description: "Three slow workers", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1" }, { agent: "w2" }, { agent: "w3" }] },
      },
    },
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

  it("parallel: members overlap in time, the coordinator gets all results in one prompt, the Oracle gets one team result", async () => {
    model.script([
      { when: { user: "assess with the panel" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "panel", prompt: "assess the plan" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "The panel is on it." }, times: 1 },
      { when: { user: "You synthesise this team's work" }, reply: { text: "PANEL SYNTHESIS: all three agree.\nDisagreements: none" }, times: 1 },
      // Each member's answer waits until all three asked: overlap is proven, however slow the machine.
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "finding from $1", delayMs: 200, gate: 3 } },
      { when: { user: "PANEL SYNTHESIS" }, reply: { text: "The panel agrees." } },
    ])
    const root = await newSession(oc, "panel")
    await prompt(oc, root, "assess with the panel")
    await until(() => ended(oc, "panel"), "the panel run to end", { saw: () => runs(oc).map((r) => `${r.team}:${r.phase}`).join(", ") })
    await until(async () => (await deliveredFrom(oc, root, "panel")).length > 0, "the team result in the Oracle's session")
    await allIdle(oc.client)

    const members = model.requests.filter((r) => /You are w\d[,.]/.test(r.lastUser) && !r.lastToolResult)
    expect(members).toHaveLength(3)
    expect(Math.max(...members.map((r) => r.at))).toBeLessThan(Math.min(...members.map((r) => r.respondedAt)))
    const synth = model.requests.filter((r) => r.lastUser.includes("You synthesise this team's work"))
    expect(synth).toHaveLength(1)
    for (const w of ["w1", "w2", "w3"]) expect(synth[0]!.lastUser).toContain(`finding from ${w}`)
    expect(synth[0]!.at).toBeGreaterThanOrEqual(Math.max(...members.map((r) => r.respondedAt)))

    const results = await deliveredFrom(oc, root, "panel")
    expect(results).toHaveLength(1)
    expect(results[0]!.nso).toMatchObject({ source: "agent", kind: "completion" })
    expect(results[0]!.text).toContain("PANEL SYNTHESIS")
    expect(results[0]!.text).toMatch(/\[NSO · panel · run wf_\w+ · completion\]/)
    const all = await transcript(oc.client, root)
    expect(all.filter((m) => m.nso && ["w1", "w2", "w3", "lead"].includes(m.nso.from))).toHaveLength(0)
    expect(ended(oc, "panel")!.phase).toBe("completed")
  })

  it("sequential: members run one after another, each sees the previous result and its artifacts, handoffs are recorded", async () => {
    model.script([
      { when: { user: "run the chain" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "chain", prompt: "process the data" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Chain started." }, times: 1 },
      { when: { user: "You are w1." }, reply: { text: "step one done\nArtifacts:\n- out/one.csv", delayMs: 300 }, times: 1 },
      { when: { user: "You are w2." }, reply: { text: "step two done\nArtifacts:\n- out/two.csv", delayMs: 300 }, times: 1 },
      { when: { user: "You are w3." }, reply: { text: "CHAIN FINAL: three steps done", delayMs: 300 }, times: 1 },
      { when: { user: "CHAIN FINAL" }, reply: { text: "The chain finished." } },
    ])
    const root = await newSession(oc, "chain")
    await prompt(oc, root, "run the chain")
    await until(() => ended(oc, "chain"), "the chain run to end")
    await until(async () => (await deliveredFrom(oc, root, "chain")).length > 0, "the chain's result in the Oracle's session")
    await allIdle(oc.client)

    const step = (w: string) => model.requests.find((r) => r.lastUser.includes(`You are ${w}.`))!
    const [one, two, three] = [step("w1"), step("w2"), step("w3")]
    expect(two.at).toBeGreaterThanOrEqual(one.respondedAt)
    expect(three.at).toBeGreaterThanOrEqual(two.respondedAt)
    expect(two.lastUser).toContain("step one done")
    expect(two.lastUser).toContain("out/one.csv")
    expect(three.lastUser).toContain("step two done")
    const run = ended(oc, "chain")!
    expect(run.phase).toBe("completed")
    expect(run.handoffs.map((h) => [h.fromAgent, h.toAgent, h.artifacts])).toEqual([
      ["w1", "w2", ["out/one.csv"]],
      ["w2", "w3", ["out/two.csv"]],
    ])
    const results = await deliveredFrom(oc, root, "chain")
    expect(results).toHaveLength(1)
    expect(results[0]!.text).toContain("CHAIN FINAL")
    expect(results[0]!.text).toContain("w1 → w2 (out/one.csv)")
    // Telemetry, written by itself: start, the two handoffs and the end, with the original field names.
    const events = await until(() => {
      const lines = readJsonl(join(oc.projectDir, ".opencode/nso/telemetry/workflow_events.jsonl")) as { event: string; workflow_id: string; [k: string]: unknown }[]
      const mine = lines.filter((l) => l.workflow_id === run.id)
      return mine.some((l) => l.event === "workflow_complete") && mine
    }, "the chain's workflow events in workflow_events.jsonl")
    expect(events.map((e) => e.event)).toEqual(["workflow_start", "agent_handoff", "agent_handoff", "workflow_complete"])
    expect(events[0]).toMatchObject({ agent_plan: ["w1", "w2", "w3"], nso: { kind: "team", team: "chain", pattern: "sequential" } })
    expect(events[1]).toMatchObject({ from_agent: "w1", to_agent: "w2", artifacts: ["out/one.csv"] })
    expect(events[3]).toMatchObject({ success: true, agents_executed: ["w1", "w2", "w3"] })
    const wall = events[3]!.duration_seconds as number
    expect(wall).toBeGreaterThan(0.9) // three members of ≥ 0.3 s each, one after another
    const inv = await until(() => {
      const lines = (readJsonl(join(oc.projectDir, ".opencode/nso/telemetry/agent_invocations.jsonl")) as { workflow_id: string; [k: string]: unknown }[]).filter((l) => l.workflow_id === run.id)
      return lines.length === 3 && lines
    }, "three invocation lines for the chain")
    expect(inv.map((l) => l.agent)).toEqual(["w1", "w2", "w3"])
    for (const l of inv) {
      expect(l).toMatchObject({ outcome: "success", success: true, team: "chain" })
      expect(l.duration_seconds as number).toBeLessThanOrEqual(wall)
      expect(l.active_seconds as number).toBeGreaterThan(0.25)
      // One model turn each; the scripted model reports 10 tokens in, 5 out per reply.
      expect(l).toMatchObject({ turns: 1, tokens: { input: 10, output: 5 }, model: "mock/m" })
    }
    // w2 waited in the queue for w1: its queue time covers w1's work.
    expect((inv[1]!.waiting_seconds as { queue: number }).queue).toBeGreaterThan(0.25)
  })

  it("coordinator-worker: the lead may delegate only to members, gets their results in one batch, and the Oracle gets one result", async () => {
    model.script([
      { when: { user: "crew, do it" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "crew", prompt: "build the feature" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Crew started." }, times: 1 },
      {
        when: { user: "You coordinate this team" },
        reply: {
          toolCalls: [
            { name: "delegate", args: { agent: "w1", prompt: "crew part one" } },
            { name: "delegate", args: { agent: "w2", prompt: "crew part two" } },
            { name: "delegate", args: { agent: "builder", prompt: "crew part three" } },
          ],
        },
        times: 1,
      },
      { when: { toolResult: "delegate only to its members" }, reply: { text: "Assigned parts one and two." }, times: 1 },
      { when: { userMatch: "^crew part (one|two)" }, reply: { text: "result of part $1", delayMs: 500 } },
      { when: { user: "result of part" }, reply: { text: "CREW SYNTHESIS: both parts fit.\nDisagreements: none" }, times: 1 },
      { when: { user: "CREW SYNTHESIS" }, reply: { text: "The crew is done." } },
    ])
    const root = await newSession(oc, "crew")
    await prompt(oc, root, "crew, do it")
    await until(() => ended(oc, "crew"), "the crew run to end", { saw: () => runs(oc).map((r) => `${r.team}:${r.phase}`).join(", ") })
    await until(async () => (await deliveredFrom(oc, root, "crew")).length > 0, "the crew's result in the Oracle's session")
    await allIdle(oc.client)

    expect(model.requests.filter((r) => /^crew part three/.test(r.lastUser))).toHaveLength(0)
    const refused = model.requests.find((r) => r.lastToolResult?.includes("delegate only to its members"))!
    expect(refused.lastToolResult).toContain("w1, w2")
    const batches = model.requests.filter((r) => r.lastUser.includes("result of part"))
    expect(batches).toHaveLength(1)
    expect(batches[0]!.lastUser).toContain("result of part one")
    expect(batches[0]!.lastUser).toContain("result of part two")
    // The batch continues as the lead (not as OpenCode's default agent), with its delegate tool.
    expect(batches[0]!.system).toContain("You lead the team.")
    const results = await deliveredFrom(oc, root, "crew")
    expect(results).toHaveLength(1)
    expect(results[0]!.text).toContain("CREW SYNTHESIS")
    expect(results[0]!.text).toMatch(/w1 \(first\): done/)
    const run = ended(oc, "crew")!
    expect(run.phase).toBe("completed")
    const phases = journal(oc).filter((r) => r.e.type === "workflow.updated" && r.e.id === run.id).map((r) => (r.e.patch as { phase?: string }).phase)
    expect(phases).toEqual(["parallel_execution", "synthesis", "completed"])
  })

  it("peer-to-peer: peers work at once with no coordinator; the run ends when all have reported and the Oracle gets one joined result", async () => {
    model.script([
      { when: { user: "ask the peers" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "peers", prompt: "inspect the table" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Peers started." }, times: 1 },
      { when: { userMatch: "You are (w\\d), the team's (\\w+)" }, reply: { text: "PEER $1 checked $2", delayMs: 200, gate: 3 } },
      { when: { user: "PEER w1" }, reply: { text: "The peers reported." } },
    ])
    const root = await newSession(oc, "peers")
    await prompt(oc, root, "ask the peers")
    await until(() => ended(oc, "peers"), "the peers run to end")
    await until(async () => (await deliveredFrom(oc, root, "peers")).length > 0, "the joined result")
    await allIdle(oc.client)
    const members = model.requests.filter((r) => /You are w\d, the team's/.test(r.lastUser) && !r.lastToolResult)
    expect(members).toHaveLength(3)
    expect(members[0]!.lastUser).toContain("as peers")
    expect(Math.max(...members.map((r) => r.at))).toBeLessThan(Math.min(...members.map((r) => r.respondedAt)))
    const results = await deliveredFrom(oc, root, "peers")
    expect(results).toHaveLength(1)
    for (const [w, what] of [["w1", "rows"], ["w2", "columns"], ["w3", "indexes"]]) expect(results[0]!.text).toContain(`## ${w} (${what})\nPEER ${w} checked ${what}`)
    expect(ended(oc, "peers")!.phase).toBe("completed")
  })

  it("hierarchical: the boss delegates to a sub-team and a worker; the sub-team's one result and the worker's reach the boss together; the Oracle gets one result", async () => {
    model.script([
      { when: { user: "ask the org" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "org", prompt: "plan the migration" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "The org is on it." }, times: 1 },
      { when: { user: "ORG SYNTHESIS" }, reply: { text: "The org is done." } },
      {
        when: { user: 'Team "org"' },
        reply: { toolCalls: [{ name: "delegate", args: { agent: "crew", prompt: "crew: migrate the schema" } }, { name: "delegate", args: { agent: "w3", prompt: "org side job" } }] },
        times: 1,
      },
      { when: { toolResult: "Started" }, reply: { text: "Assigned." } },
      { when: { user: 'Team "crew"' }, reply: { toolCalls: [{ name: "delegate", args: { agent: "w1", prompt: "crew part one" } }, { name: "delegate", args: { agent: "w2", prompt: "crew part two" } }] }, times: 1 },
      { when: { userMatch: "^crew part (one|two)" }, reply: { text: "result of part $1", delayMs: 300 } },
      { when: { user: "org side job" }, reply: { text: "side job result", delayMs: 300 }, times: 1 },
      { when: { user: "result of part" }, reply: { text: "CREW SYNTHESIS: schema migrated.\nDisagreements: none" }, times: 1 },
      { when: { user: "CREW SYNTHESIS" }, reply: { text: "ORG SYNTHESIS: migration planned.\nDisagreements: none" }, times: 1 },
    ])
    const root = await newSession(oc, "org")
    await prompt(oc, root, "ask the org")
    await until(() => ended(oc, "org"), "the org run to end", { saw: () => runs(oc).map((r) => `${r.team}:${r.phase}`).join(", ") })
    await until(async () => (await deliveredFrom(oc, root, "org")).length > 0, "the org's result in the Oracle's session")
    await allIdle(oc.client)

    const crewRun = runs(oc).filter((r) => r.team === "crew").at(-1)!
    const orgRun = ended(oc, "org")!
    expect(orgRun.phase).toBe("completed")
    expect(crewRun.phase).toBe("completed")
    expect((crewRun as { parentWorkflowId?: string }).parentWorkflowId).toBe(orgRun.id)
    const bossBatch = model.requests.filter((r) => r.lastUser.includes("CREW SYNTHESIS") && r.system.includes("You lead the organisation."))
    expect(bossBatch).toHaveLength(1)
    expect(bossBatch[0]!.lastUser).toContain("side job result")
    expect(bossBatch[0]!.lastUser).toMatch(/\[NSO · crew · run wf_\w+ · completion\]/)
    const results = await deliveredFrom(oc, root, "org")
    expect(results).toHaveLength(1)
    expect(results[0]!.text).toContain("ORG SYNTHESIS")
    expect(await deliveredFrom(oc, root, "crew")).toHaveLength(0)
  })

  it("a member over its time limit is stopped; the run ends partial with what arrived, and the user is told (escalation on_failure)", async () => {
    model.script([
      { when: { user: "timed run" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "timed", prompt: "count the rows" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "You are w1." }, reply: { text: "w1 counted 42 rows", delayMs: 200 }, times: 1 },
      { when: { user: "You are w4." }, reply: { text: "too late", delayMs: 20_000 }, times: 1 },
      { when: { user: "w1 counted 42 rows" }, reply: { text: "Partial result noted." } },
      { when: { user: "failed" }, reply: { text: "Noted the failure." } },
    ])
    const root = await newSession(oc, "timed")
    await prompt(oc, root, "timed run")
    await until(() => ended(oc, "timed"), "the timed run to end", { saw: () => runs(oc).map((r) => `${r.team}:${r.phase}`).join(", ") })
    await until(async () => (await deliveredFrom(oc, root, "timed")).length >= 2, "the partial result and the escalation in the Oracle's session")
    await allIdle(oc.client, "the slow member's session stopped")
    const run = ended(oc, "timed")!
    expect(run.phase).toBe("partial")
    const got = await deliveredFrom(oc, root, "timed")
    const result = got.find((m) => m.nso?.kind === "completion")!
    expect(result.text).toContain("w1 counted 42 rows")
    expect(result.text).toMatch(/w4: failed — stopped: it ran longer than its 5 s limit/)
    expect(result.text).toContain("1 of 2 member(s) gave no result")
    const escalation = got.find((m) => m.nso?.kind === "escalation")!
    expect(escalation.text).toContain("member w4 failed")
    expect(model.requests.filter((r) => r.lastUser.includes("too late"))).toHaveLength(0)
  })

  it("cancelling a run stops every member and leaves no session busy; the run is marked cancelled", async () => {
    model.script([
      { when: { user: "slow panel please" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "slow", prompt: "think slowly" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Started." }, times: 1 },
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "never seen", delayMs: 30_000 } },
    ])
    const root = await newSession(oc, "cancel")
    await prompt(oc, root, "slow panel please")
    await until(() => model.requests.filter((r) => /You are w\d[,.]/.test(r.lastUser)).length >= 3, "three members working")
    const run = runs(oc).find((r) => r.team === "slow")!
    await oc.client.session.command({ path: { id: root }, body: { command: "nso-cancel", arguments: run.id } })
    await until(() => ended(oc, "slow"), "the run marked ended")
    await allIdle(oc.client, "every member session stopped")
    expect(ended(oc, "slow")!.phase).toBe("cancelled")
    const statuses = journal(oc)
      .filter((r) => r.e.type === "task.created" && (r.e.task as { workflow?: { id: string } }).workflow?.id === run.id)
      .map((r) => (r.e.task as { id: string }).id)
      .map((id) => journal(oc).filter((r) => r.e.type === "task.updated" && r.e.id === id && (r.e.patch as { status?: string }).status).at(-1)!.e.patch as { status: string })
    expect(statuses.map((s) => s.status)).toEqual(["cancelled", "cancelled", "cancelled", "cancelled"])
    const shown = (await transcript(oc.client, root)).filter((m) => m.nso && m.text.includes(`Cancelled team run ${run.id}`))
    expect(shown).toHaveLength(1)
    expect(model.requests.filter((r) => r.lastUser.includes("You synthesise"))).toHaveLength(0)
  })

  it("/team starts a run from the user, without a model turn, and its result arrives in that session", async () => {
    model.script([
      { when: { user: "You synthesise this team's work" }, reply: { text: "USER PANEL SYNTHESIS.\nDisagreements: none" }, times: 1 },
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "finding from $1", delayMs: 200 } },
      { when: { user: "USER PANEL SYNTHESIS" }, reply: { text: "Here is what the panel found." } },
    ])
    const root = await newSession(oc, "slash team")
    const before = model.requests.length
    await oc.client.session.command({ path: { id: root }, body: { command: "team", arguments: "panel review the release notes" } })
    const started = (await transcript(oc.client, root)).find((m) => m.nso && m.text.includes("Started team run"))
    expect(started?.text).toMatch(/Started team run wf_\w+: panel \(parallel; w1, w2, w3, lead\)/)
    // No model call for the command itself: the first ones are the members'.
    expect(model.requests.slice(before).some((r) => r.lastUser.includes("panel review the release notes") && !/You are w\d/.test(r.lastUser) && !r.lastUser.includes("You synthesise"))).toBe(false)
    await until(async () => (await deliveredFrom(oc, root, "panel")).length > 0, "the panel's result in the session")
    const run = runs(oc).filter((r) => r.team === "panel").at(-1)!
    expect((run as { startedBy?: string }).startedBy).toBe("user")
    expect((run as { goal?: string }).goal).toBe("review the release notes")
    const bad = await oc.client.session.command({ path: { id: root }, body: { command: "team", arguments: "nosuchteam do things" } }).catch((e: unknown) => e)
    void bad
    const errors = (await transcript(oc.client, root)).filter((m) => m.nso && m.text.includes("/team failed"))
    expect(errors.at(-1)!.text).toMatch(/No team "nosuchteam"\. Teams: .*panel/)
  })
})

describe("team definitions and the CLI on a real server", () => {
  const srv = liveServer({
    nso: { buffer: { pauseMs: 300 }, init: { sweepDelayMs: 50 }, agents: { w1: worker("w1"), w2: worker("w2") } },
    files: {
      ".opencode/nso/teams/duo.yaml": 'name: duo\ndescription: "Two workers at once"\npattern: parallel\nmembers:\n  - agent: w1\n  - agent: w2\n',
      ".opencode/nso/teams/broken.yaml": 'name: broken\ndescription: "A bad pattern"\npattern: round_robin\nmembers:\n  - agent: w1\n',
      ".opencode/nso/teams/ghost.yaml": 'name: ghost\ndescription: "Names a profile nobody defined"\npattern: parallel\nmembers:\n  - agent: w1\n  - agent: casper\n',
    },
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

  it("invalid team files are reported to the user with file, field and problem; the valid team runs", async () => {
    model.script([
      { when: { user: "run the duo" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "duo", prompt: "check both sides" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Duo started." }, times: 1 },
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "side checked by $1", delayMs: 200 } },
      { when: { user: "side checked by" }, reply: { text: "Both sides are checked." } },
    ])
    const root = await newSession(oc, "definitions")
    await prompt(oc, root, "run the duo")
    const teamNotices = async () => (await transcript(oc.client, root)).filter((m) => m.nso?.from === "nso" && m.text.includes("NSO teams:")).map((m) => m.text)
    await until(async () => /ghost\.yaml/.test((await teamNotices()).join("\n")) && /broken\.yaml/.test((await teamNotices()).join("\n")), "both team problems shown in the session", { saw: async () => (await teamNotices()).join(" | ") || "none" })
    const notices = await teamNotices()
    expect(notices.join("\n")).toMatch(/broken\.yaml: pattern: .*that team is left out/)
    expect(notices.join("\n")).toMatch(/ghost\.yaml: members\.1\.agent: .*casper.*that team is left out/)
    // The Oracle is offered the valid team only.
    const offered = model.requests.find((r) => r.tools.includes("delegate"))!
    expect(JSON.stringify(offered.toolDefs["delegate"])).toMatch(/Teams: [^"]*duo/)
    expect(JSON.stringify(offered.toolDefs["delegate"])).not.toMatch(/broken|ghost/)
    await until(() => ended(oc, "duo"), "the duo run to end")
    await until(async () => (await deliveredFrom(oc, root, "duo")).length > 0, "the duo's result")
    expect(ended(oc, "duo")!.phase).toBe("completed")
  })

  it("nso team run starts a run through the server and prints its id; nso teams lists where each team was defined", async () => {
    model.script([
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "cli finding from $1", delayMs: 200 } },
      { when: { user: "cli finding from" }, reply: { text: "The CLI run is done." } },
    ])
    const root = await newSession(oc, "cli")
    await prompt(oc, root, "hello")
    const cli = join(REPO, "dist/scripts/nso.js")
    // The human + agents pattern: the user's goal and notes reach every member of the run.
    await run(process.execPath, [cli, "context", "--goal", "ship billing v2", "--note", "use Postgres, not SQLite", "--dir", oc.projectDir], { timeout: remainingMs() })
    const { stdout } = await run(process.execPath, [cli, "team", "run", "duo", "audit the logs", "--dir", oc.projectDir], { timeout: remainingMs() })
    const id = /Started team run (wf_\w+)/.exec(stdout)?.[1]
    expect(id, stdout).toBeDefined()
    await until(async () => (await deliveredFrom(oc, root, "duo")).some((m) => m.text.includes("cli finding from w1")), "the CLI-started run's result in the session the user wrote in")
    const member = model.requests.find((x) => x.lastUser.includes("You are w2.") && x.lastUser.includes("audit the logs"))!
    expect(member.lastUser).toContain("Goal: ship billing v2")
    expect(member.lastUser).toContain("use Postgres, not SQLite")
    const r = runs(oc).find((x) => x.id === id)!
    expect((r as { startedBy?: string }).startedBy).toBe("user")
    const list = JSON.parse((await run(process.execPath, [cli, "teams", "--dir", oc.projectDir, "--json"], { timeout: remainingMs() })).stdout) as { teams: { name: string; definedIn: unknown }[] }
    const duo = list.teams.find((t) => t.name === "duo")!
    expect(JSON.stringify(duo.definedIn)).toContain(".opencode/nso/teams/duo.yaml")
    expect(list.teams.map((t) => t.name)).toEqual(expect.arrayContaining(["code-review", "incident-response", "duo"]))
  })
})

describe("a team run across a crash", () => {
  it("kill -9 with members working, restart: one question for the whole run, 'resume' resumes every member, the run finishes once", async () => {
    const { model, start } = ownServers()
    const nso = {
      buffer: { pauseMs: 200 },
      init: { sweepDelayMs: 50 },
      agents: { w1: worker("w1"), w2: worker("w2"), lead: { description: "Leads a team", prompt: "You lead the team.", delegates: true } },
      teams: { pair: { description: "Two workers, a lead sums up", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1" }, { agent: "w2" }] } },
    }
    const first = await start({ nso })
    model.script([
      { when: { user: "pair up" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "pair", prompt: "long analysis" } }] }, times: 1 },
      { when: { toolResult: "Started team run" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "You synthesise this team's work" }, reply: { text: "PAIR SYNTHESIS after the crash.\nDisagreements: none" }, times: 1 },
      { when: { userMatch: "You are (w\\d)[,.]" }, reply: { text: "never", delayMs: 60_000 }, times: 2 },
      { when: { user: "Your work on this task was interrupted" }, reply: { text: "resumed work done" } },
      { when: { userMatch: "question (q_\\w+)\\]" }, reply: { text: "Resume or cancel the team run?" }, times: 1 },
      { when: { user: "PAIR SYNTHESIS" }, reply: { text: "The pair finished." } },
    ])
    const root = (await first.client.session.create({ body: { title: "crash" } })).data!.id
    await prompt(first, root, "pair up")
    await model.waitFor((r) => r.lastUser.includes("You are w2") && !r.lastToolResult, { what: "both members working" })
    await model.waitFor((r) => r.lastUser.includes("You are w1") && !r.lastToolResult, { what: "both members working" })
    await first.kill()

    const second = await start({ nso, projectDir: first.projectDir, homeDir: first.homeDir })
    await second.client.session.list()
    const asked = await until(
      async () => (await transcript(second.client, root)).find((m) => m.nso?.kind === "question" && m.text.includes("Team run wf_")),
      "one question about the interrupted run",
    )
    const qid = /question (q_\w+)/.exec(asked.text)![1]!
    await allIdle(second.client)
    const questions = (await transcript(second.client, root)).filter((m) => m.nso?.kind === "question" && m.text.includes("Resume it or cancel it?"))
    expect(questions).toHaveLength(1)
    await second.client.session.command({ path: { id: root }, body: { command: "answer", arguments: `${qid} resume` } })
    await until(() => ended(second, "pair"), "the pair run to end after the restart", { saw: () => runs(second).map((r) => `${r.team}:${r.phase}`).join(", ") })
    await until(async () => (await deliveredFrom(second, root, "pair")).length > 0, "the pair's result")
    await allIdle(second.client)
    expect(ended(second, "pair")!.phase).toBe("completed")
    const results = await deliveredFrom(second, root, "pair")
    expect(results).toHaveLength(1)
    expect(results[0]!.text).toContain("PAIR SYNTHESIS after the crash")
    expect(model.requests.filter((r) => r.lastUser.includes("Your work on this task was interrupted"))).toHaveLength(2)
    expect(journal(second).filter((r) => r.e.type === "workflow.created")).toHaveLength(1)
    expect(journal(second).filter((r) => r.e.type === "task.created")).toHaveLength(3)
  }, LIMITS.ownServersTestMs)
})
