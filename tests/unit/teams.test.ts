import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { Options } from "../../plugin/options.js"
import { TERMINAL_PHASES as TERMINAL, type JournalEvent, type Task } from "../../plugin/protocol.js"
import { Runtime } from "../../plugin/runtime.js"
import { TaskError } from "../../plugin/tasks/manager.js"
import { artifactsOf, disagreementsOf, planRun } from "../../plugin/teams/plan.js"
import { Team } from "../../plugin/teams/team.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

// ---------------------------------------------------------------------------------------------
// The planner: pure, one per pattern.

const team = (t: Record<string, unknown>): Team => Team.parse({ description: "a test team", ...t })

describe("planner", () => {
  it("parallel with a coordinator: members at once, reporting to the run; a synthesis step after all of them", () => {
    const t = team({ name: "panel", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1", role: "rows" }, { agent: "w2" }, { agent: "w3" }] })
    const plan = planRun(t, "assess the plan", "wf_run001")
    expect(plan.steps.map((s) => [s.step, s.agent, s.after, s.report])).toEqual([
      ["member:0", "w1", [], "workflow"],
      ["member:1", "w2", [], "workflow"],
      ["member:2", "w3", [], "workflow"],
      ["synthesis", "lead", ["member:0", "member:1", "member:2"], "workflow"],
    ])
    expect(plan.resultStep).toBe("synthesis")
    expect(plan.delegatesTo).toEqual([])
    expect(plan.steps[0]!.role).toBe("rows")
    expect(plan.steps[1]!.role).toBeUndefined()
    expect(plan.steps[3]!.role).toBe("coordinator")
    const synth = plan.steps[3]!.prompt
    expect(synth).toContain("You synthesise this team's work. Goal: assess the plan")
    expect(synth).toContain("- w1: rows\n- w2\n- w3")
    expect(synth).toContain("`Disagreements:`")
    expect(synth).toContain('Team "panel" (parallel), run wf_run001: a test team')
  })

  it("parallel without a coordinator: members only, no result step; wait_for_all false reports each member to the parent", () => {
    const members = [{ agent: "w1" }, { agent: "w2" }]
    const waiting = planRun(team({ name: "duo", pattern: "parallel", members }), "g", "wf_run001")
    expect(waiting.steps.map((s) => [s.step, s.after, s.report])).toEqual([
      ["member:0", [], "workflow"],
      ["member:1", [], "workflow"],
    ])
    expect(waiting.resultStep).toBeUndefined()
    const loose = planRun(team({ name: "duo", pattern: "parallel", members, rules: { wait_for_all: false } }), "g", "wf_run001")
    expect(loose.steps.map((s) => s.report)).toEqual(["parent", "parent"])
    expect(loose.resultStep).toBeUndefined()
    // With a coordinator the synthesis needs everyone: members report to the run even so.
    const led = planRun(team({ name: "duo", pattern: "parallel", coordinator: "lead", members, rules: { wait_for_all: false } }), "g", "wf_run001")
    expect(led.steps.map((s) => s.report)).toEqual(["workflow", "workflow", "workflow"])
  })

  it("sequential: ordered by priority, then as written; each after the previous; the last one's result is the run's", () => {
    const t = team({
      name: "chain",
      pattern: "sequential",
      members: [{ agent: "w4" }, { agent: "w3", priority: 3 }, { agent: "w1", priority: 1 }, { agent: "w2", priority: 2 }, { agent: "w5" }],
    })
    const plan = planRun(t, "process the data", "wf_run001")
    expect(plan.steps.map((s) => [s.step, s.agent, s.after, s.report])).toEqual([
      ["member:0", "w1", [], "workflow"],
      ["member:1", "w2", ["member:0"], "workflow"],
      ["member:2", "w3", ["member:1"], "workflow"],
      ["member:3", "w4", ["member:2"], "workflow"],
      ["member:4", "w5", ["member:3"], "workflow"],
    ])
    expect(plan.resultStep).toBe("member:4")
    expect(plan.delegatesTo).toEqual([])
    expect(plan.steps[0]!.prompt).toContain("You are step 1 of 5. w2 continues from your result.")
    expect(plan.steps[1]!.prompt).toContain("You are step 2 of 5. The previous member's result")
    expect(plan.steps[1]!.prompt).toContain("w3 continues from your result.")
    expect(plan.steps[4]!.prompt).toContain("Yours is the team's final result.")
  })

  it("sequential with one member: its prompt says its result is the final one, not that it continues from itself", () => {
    const plan = planRun(team({ name: "solo", pattern: "sequential", members: [{ agent: "w1" }] }), "g", "wf_run001")
    expect(plan.steps[0]!.prompt).not.toContain("w1 continues from your result")
    expect(plan.steps[0]!.prompt).toContain("Yours is the team's final result.")
  })

  it("coordinator_worker and hierarchical: one coordinator step whose result is the run's; it may delegate to the members", () => {
    const cw = planRun(team({ name: "crew", pattern: "coordinator_worker", coordinator: "lead", members: [{ agent: "w1", role: "first" }, { agent: "w2", instructions: "do part two" }] }), "build it", "wf_run001")
    expect(cw.steps.map((s) => [s.step, s.agent, s.after, s.report, s.role])).toEqual([["coordinator", "lead", [], "workflow", "coordinator"]])
    expect(cw.resultStep).toBe("coordinator")
    expect(cw.delegatesTo).toEqual(["w1", "w2"])
    expect(cw.steps[0]!.prompt).toContain("You coordinate this team. Goal: build it")
    expect(cw.steps[0]!.prompt).toContain("Members (delegate only to these):\n- w1: first\n- w2 — do part two")
    expect(cw.steps[0]!.prompt).toContain('Team "crew" (coordinator-worker)')

    const h = planRun(team({ name: "org", pattern: "hierarchical", coordinator: "boss", members: [{ team: "crew", role: "the crew" }, { agent: "w3" }] }), "plan it", "wf_run002")
    expect(h.steps.map((s) => [s.step, s.agent, s.after, s.report])).toEqual([["coordinator", "boss", [], "workflow"]])
    expect(h.resultStep).toBe("coordinator")
    expect(h.delegatesTo).toEqual(["crew", "w3"])
    expect(h.steps[0]!.prompt).toContain("a sub-team runs as one member and returns one result")
    expect(h.steps[0]!.prompt).toContain("- crew (a sub-team): the crew\n- w3")
  })

  it("peer_to_peer: everyone at once as peers; no result step; wait_for_all false reports to the parent", () => {
    const members = [{ agent: "w1", role: "rows" }, { agent: "w2", role: "columns" }]
    const plan = planRun(team({ name: "peers", pattern: "peer_to_peer", members }), "inspect the table", "wf_run001")
    expect(plan.steps.map((s) => [s.step, s.agent, s.after, s.report])).toEqual([
      ["member:0", "w1", [], "workflow"],
      ["member:1", "w2", [], "workflow"],
    ])
    expect(plan.resultStep).toBeUndefined()
    expect(plan.delegatesTo).toEqual([])
    expect(plan.steps[0]!.prompt).toContain("as peers: nobody assigns your work")
    const loose = planRun(team({ name: "peers", pattern: "peer_to_peer", members, rules: { wait_for_all: false } }), "g", "wf_run001")
    expect(loose.steps.map((s) => s.report)).toEqual(["parent", "parent"])
  })

  it("a member's prompt carries the team, the goal, its role, its instructions and its teammates", () => {
    const t = team({
      name: "review",
      pattern: "parallel",
      instructions: "Stay in your own area.",
      members: [{ agent: "w1", role: "security reviewer", instructions: "Look for injection." }, { agent: "w2" }, { agent: "w3" }],
    })
    const plan = planRun(t, "review the diff", "wf_run001")
    const p = plan.steps[0]!.prompt
    expect(p).toContain('Team "review" (parallel), run wf_run001: a test team')
    expect(p).toContain("How this team works: Stay in your own area.")
    expect(p).toContain("You are w1, the team's security reviewer. Your teammates: w2, w3.")
    expect(p).toContain("Team goal: review the diff")
    expect(p).toContain("Your part: Look for injection.")
    expect(p).toContain('list them last under "Artifacts:"')
    const q = plan.steps[1]!.prompt
    expect(q).toContain("You are w2. Your teammates: w1, w3.")
    expect(q).not.toContain("Your part:")
    expect(q).toContain("How this team works: Stay in your own area.")
    expect(plan.steps[0]!.title).toBe("review · security reviewer: review the diff")
    expect(plan.steps[1]!.title).toBe("review · w2: review the diff")
  })

  it("is deterministic: the same team, goal and run id give the same plan", () => {
    const t = team({ name: "panel", pattern: "parallel", coordinator: "lead", members: [{ agent: "w1" }, { agent: "w2" }] })
    expect(planRun(t, "g", "wf_run001")).toEqual(planRun(t, "g", "wf_run001"))
  })
})

describe("artifactsOf", () => {
  it("reads the list under Artifacts:, backticks removed", () => {
    expect(artifactsOf("step one done\nArtifacts:\n- out/one.csv\n- `src/a.ts`\n* docs/b.md")).toEqual(["out/one.csv", "src/a.ts", "docs/b.md"])
    expect(artifactsOf("done\n\n## Artifacts\n- out/x.json\n\nNext steps:\n- nothing")).toEqual(["out/x.json"])
    expect(artifactsOf("done\n**Artifacts:**\n- a.txt")).toEqual(["a.txt"])
  })

  it("is empty without the section, with no list under it, or with no result", () => {
    expect(artifactsOf("I changed nothing.")).toEqual([])
    expect(artifactsOf("Artifacts: none")).toEqual([])
    expect(artifactsOf("Artifacts:\nnothing produced")).toEqual([])
    expect(artifactsOf("")).toEqual([])
    expect(artifactsOf(undefined)).toEqual([])
  })
})

describe("disagreementsOf", () => {
  it("'Disagreements: none' (and its variants) is none", () => {
    expect(disagreementsOf("All agree.\nDisagreements: none")).toEqual([])
    expect(disagreementsOf("Disagreements: None.")).toEqual([])
    expect(disagreementsOf("**Disagreements:** no disagreements")).toEqual([])
    expect(disagreementsOf("Disagreements: n/a\n\nRecommendation: ship it.")).toEqual([])
  })

  it("reads inline text and a bullet list", () => {
    expect(disagreementsOf("Findings…\nDisagreements: w1 wants Postgres, w2 wants SQLite\nRecommendation: Postgres")).toEqual(["w1 wants Postgres, w2 wants SQLite"])
    expect(disagreementsOf("Findings…\nDisagreements:\n- w1 says ship\n* w2 says wait\n\nRecommendation: wait")).toEqual(["w1 says ship", "w2 says wait"])
    expect(disagreementsOf("## Disagreements\n- on the schema")).toEqual(["on the schema"])
  })

  it("is empty without the section, or with no result", () => {
    expect(disagreementsOf("Everyone agrees on everything.")).toEqual([])
    expect(disagreementsOf("")).toEqual([])
    expect(disagreementsOf(undefined)).toEqual([])
  })

  it("reads a bullet list separated from its heading by a blank line", () => {
    expect(disagreementsOf("## Disagreements\n\n- w1 says ship\n- w2 says wait")).toEqual(["w1 says ship", "w2 says wait"])
  })
})

// ---------------------------------------------------------------------------------------------
// Runs through a Runtime with the fake host.

let current: Runtime | undefined
/** Lets pending work settle, including real file I/O (task context files). No clock moves. */
const flush = async () => {
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    if (current) {
      await settled(() => current!.tasks.launching === 0, "launches")
      await current.journal.flush().catch(() => {})
      await current.deliverer.idle()
    }
  }
}

async function settled(cond: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return
    await new Promise((r) => setImmediate(r))
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1))
  }
  throw new Error(`never settled: ${what}`)
}

const worker = (n: string) => ({ description: `Worker ${n}`, prompt: `You are worker ${n}.` })
const AGENTS = {
  w1: worker("w1"),
  w2: worker("w2"),
  w3: worker("w3"),
  w4: worker("w4"),
  lead: { description: "Leads a team", prompt: "You lead the team.", delegates: true },
  boss: { description: "Leads the leads", prompt: "You lead the organisation.", delegates: true },
}
const three = [{ agent: "w1" }, { agent: "w2" }, { agent: "w3" }]
const TEAMS = {
  panel: { description: "Three workers at once, a lead sums up", pattern: "parallel", coordinator: "lead", members: three },
  opinions: { description: "A panel that escalates disagreements", pattern: "parallel", coordinator: "lead", members: three, rules: { escalation: "on_disagreement" } },
  crew: { description: "A lead assigns work to two workers", pattern: "coordinator_worker", coordinator: "lead", members: [{ agent: "w1", role: "first" }, { agent: "w2", role: "second" }] },
  org: { description: "A boss over the crew and one more worker", pattern: "hierarchical", coordinator: "boss", members: [{ team: "crew", role: "the crew" }, { agent: "w3" }], rules: { max_depth: 1 } },
  timed: { description: "Two workers with a time limit", pattern: "parallel", members: [{ agent: "w1" }, { agent: "w4" }], rules: { timeout_per_agent_ms: 1500, escalation: "on_failure" } },
  single: { description: "Three workers, one at a time", pattern: "parallel", members: three, rules: { max_parallel: 1 } },
  turns: { description: "Two workers with a turn limit", pattern: "parallel", members: [{ agent: "w1" }, { agent: "w2" }], rules: { max_turns_per_agent: 2 } },
  pair: { description: "Two peers", pattern: "peer_to_peer", members: [{ agent: "w1" }, { agent: "w2" }] },
  loose: { description: "Two workers, each reporting on its own", pattern: "parallel", members: [{ agent: "w1" }, { agent: "w2" }], rules: { wait_for_all: false } },
  chain: {
    description: "Three workers one after another",
    pattern: "sequential",
    members: [
      { agent: "w3", priority: 3 },
      { agent: "w1", priority: 1 },
      { agent: "w2", priority: 2 },
    ],
  },
}

async function setup(over: Record<string, unknown> = {}, dir = tempDir(), deps = fakeDeps()) {
  const opts = Options.parse({ journal: { fsync: false }, buffer: { pauseMs: 1000 }, agents: AGENTS, teams: TEAMS, ...over })
  const rt = await Runtime.start(deps, dir, opts)
  current = rt
  // The Oracle is busy answering the user, so what reaches it stays in the buffer to inspect.
  rt.registry.setBusy("ses_root", true)
  const host = deps.fakeHost
  const sid = (t: Task) => rt.tasks.get(t.id)!.sessionId!
  /** The child session goes idle having answered `text`. */
  const finish = async (sessionId: string, text: string) => {
    host.busy.delete(sessionId)
    host.outcomes.set(sessionId, { completed: true, text, createdAt: deps.time.now })
    await rt.tasks.onIdle(sessionId)
    await flush()
  }
  const fail = async (sessionId: string) => {
    host.busy.delete(sessionId)
    host.outcomes.set(sessionId, { completed: true, text: "", createdAt: deps.time.now, error: { name: "APIError", message: "boom", aborted: false } })
    await rt.tasks.onIdle(sessionId)
    await flush()
  }
  const start = async (name: string, goal = "do the thing") => {
    const { run } = await rt.runs.start({ team: name, goal, parentSessionId: "ses_root", startedBy: "oracle" })
    await flush()
    return run
  }
  /** The run's task for a step. */
  const step = (runId: string, s: string) => rt.runs.tasksOf(runId).find((t) => t.workflow!.step === s)!
  const byAgent = (runId: string, agent: string) => rt.runs.tasksOf(runId).find((t) => t.agent === agent)!
  const toRoot = () => rt.deliverer.pending("ses_root")
  return { rt, deps, host, dir, sid, finish, fail, start, step, byAgent, toRoot }
}

/** The journal's records, as written. */
function journalEvents(dir: string): JournalEvent[] {
  return readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { e: JournalEvent }).e)
}

describe("parallel with a coordinator", () => {
  it("members start at once; the synthesis starts after all ended with each result; the Oracle hears the team once", async () => {
    const { rt, host, sid, finish, byAgent, step, toRoot } = await setup()
    const d = await rt.runs.delegate({ parentSessionId: "ses_root", agent: "panel", prompt: "assess the plan" }, "oracle")
    expect(d.kind).toBe("run")
    const run = (d as Extract<typeof d, { kind: "run" }>).run
    await flush()
    expect(host.prompts.map((p) => p.agent).sort()).toEqual(["w1", "w2", "w3"])
    expect(rt.runs.get(run.id)!.phase).toBe("parallel_execution")
    const synth = step(run.id, "synthesis")
    expect(synth).toMatchObject({ agent: "lead", status: "queued", acceptPartial: true, workflow: { id: run.id, report: "workflow" } })
    expect(synth.dependsOn.sort()).toEqual(["w1", "w2", "w3"].map((a) => byAgent(run.id, a).id).sort())

    await finish(sid(byAgent(run.id, "w1")), "finding from w1")
    await finish(sid(byAgent(run.id, "w2")), "finding from w2")
    expect(host.prompts).toHaveLength(3)
    expect(rt.tasks.get(synth.id)!.status).toBe("queued")
    await finish(sid(byAgent(run.id, "w3")), "finding from w3")
    expect(host.prompts).toHaveLength(4)
    expect(rt.runs.get(run.id)!.phase).toBe("synthesis")
    const prompt = host.prompts[3]!
    expect(prompt.agent).toBe("lead")
    expect(prompt.text).toContain("You synthesise this team's work. Goal: assess the plan")
    for (const w of ["w1", "w2", "w3"]) expect(prompt.text).toContain(`finding from ${w}`)
    // Nothing from a member reached the Oracle.
    expect(toRoot()).toEqual([])

    await finish(sid(synth), "PANEL SYNTHESIS: all three agree.\nDisagreements: none")
    expect(rt.runs.get(run.id)!.phase).toBe("completed")
    const heard = toRoot()
    expect(heard).toHaveLength(1)
    expect(heard[0]).toMatchObject({ kind: "completion", from: "panel", workflowId: run.id, source: "agent" })
    expect(heard[0]!.text).toContain("PANEL SYNTHESIS: all three agree.")
    expect(heard[0]!.text).toMatch(/^Team "panel" \(parallel\) completed, [\d.]+ s\. Members:\n- w1: done\n- w2: done\n- w3: done\n/)
    await rt.dispose()
  })

  for (const how of ["an error in its reply", "tasks.stop"] as const)
    it(`a failed member (${how}) is marked FAILED in the synthesis; the run is partial; the Oracle gets one result and one escalation`, async () => {
      const { rt, host, sid, finish, fail, start, byAgent, step, toRoot } = await setup()
      const run = await start("panel", "assess the plan")
      const w2 = byAgent(run.id, "w2")
      if (how === "tasks.stop") {
        await rt.tasks.stop(w2.id, "the budget ran out")
        await flush()
        expect(host.aborted).toContain(sid(w2))
      } else await fail(sid(w2))
      expect(rt.tasks.get(w2.id)!.status).toBe("failed")
      await finish(sid(byAgent(run.id, "w1")), "finding from w1")
      await finish(sid(byAgent(run.id, "w3")), "finding from w3")
      const prompt = host.prompts.find((p) => p.agent === "lead")!
      expect(prompt.text).toContain("finding from w1")
      expect(prompt.text).toContain("finding from w3")
      const why = how === "tasks.stop" ? "stopped: the budget ran out" : "APIError: boom"
      expect(prompt.text).toContain(`[${w2.id} · w2 · ${w2.title} · FAILED: no result — ${why}]`)

      await finish(sid(step(run.id, "synthesis")), "PARTIAL SYNTHESIS\nDisagreements: none")
      expect(rt.runs.get(run.id)!.phase).toBe("partial")
      const heard = toRoot()
      expect(heard.map((e) => e.kind).sort()).toEqual(["completion", "escalation"])
      for (const e of heard) expect(e).toMatchObject({ from: "panel", workflowId: run.id })
      const result = heard.find((e) => e.kind === "completion")!
      expect(result.text).toContain("partial — 1 of 3 member(s) gave no result")
      expect(result.text).toContain(`- w2: failed — ${why}`)
      expect(result.text).toContain("PARTIAL SYNTHESIS")
      expect(heard.find((e) => e.kind === "escalation")!.text).toContain(`member w2 failed — ${why}`)
      expect(heard.filter((e) => ["w1", "w2", "w3", "lead"].includes(e.from))).toEqual([])
      await rt.dispose()
    })

  it("escalation never: a failed member is not escalated", async () => {
    const { rt, sid, finish, fail, start, byAgent, step, toRoot } = await setup({
      teams: { ...TEAMS, quiet: { description: "A panel that never escalates", pattern: "parallel", coordinator: "lead", members: three, rules: { escalation: "never" } } },
    })
    const run = await start("quiet")
    await fail(sid(byAgent(run.id, "w1")))
    await finish(sid(byAgent(run.id, "w2")), "b")
    await finish(sid(byAgent(run.id, "w3")), "c")
    await finish(sid(step(run.id, "synthesis")), "S\nDisagreements: none")
    expect(toRoot().map((e) => e.kind)).toEqual(["completion"])
    await rt.dispose()
  })
})

describe("escalation: on_disagreement", () => {
  it("a synthesis listing disagreements buffers one escalation listing them", async () => {
    const { rt, sid, finish, start, byAgent, step, toRoot } = await setup()
    const run = await start("opinions")
    for (const w of ["w1", "w2", "w3"]) await finish(sid(byAgent(run.id, w)), `view of ${w}`)
    await finish(sid(step(run.id, "synthesis")), "Findings by member…\nDisagreements:\n- w1 wants Postgres, w2 wants SQLite\n- w3 would not ship yet\n\nRecommendation: Postgres.")
    const heard = toRoot()
    expect(heard.map((e) => e.kind).sort()).toEqual(["completion", "escalation"])
    const esc = heard.find((e) => e.kind === "escalation")!
    expect(esc).toMatchObject({ from: "opinions", workflowId: run.id, to: "user" })
    expect(esc.text).toContain("- w1 wants Postgres, w2 wants SQLite\n- w3 would not ship yet")
    await rt.dispose()
  })

  it("'Disagreements: none' buffers no escalation; neither does a failed member", async () => {
    const { rt, sid, finish, fail, start, byAgent, step, toRoot } = await setup()
    const run = await start("opinions")
    await fail(sid(byAgent(run.id, "w1")))
    for (const w of ["w2", "w3"]) await finish(sid(byAgent(run.id, w)), `view of ${w}`)
    await finish(sid(step(run.id, "synthesis")), "All agree.\nDisagreements: none")
    expect(toRoot().map((e) => e.kind)).toEqual(["completion"])
    await rt.dispose()
  })
})

describe("coordinator_worker", () => {
  it("the coordinator delegates only to members, waits for them, hears them in one batch, then ends the run", async () => {
    const { rt, host, dir, sid, finish, start, step, toRoot } = await setup()
    const run = await start("crew", "build the feature")
    expect(rt.runs.get(run.id)!.phase).toBe("delegation")
    const coord = step(run.id, "coordinator")
    expect(coord).toMatchObject({ agent: "lead", status: "running" })
    const cs = sid(coord)

    // A non-member is refused, with the members named; the phase does not move.
    const refused = await rt.runs.delegate({ parentSessionId: cs, agent: "w3", prompt: "crew part three" }, "lead").catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(TaskError)
    expect((refused as Error).message).toContain('You coordinate team "crew": delegate only to its members — w1, w2. "w3" is not one of them.')
    expect(rt.runs.get(run.id)!.phase).toBe("delegation")

    const d1 = await rt.runs.delegate({ parentSessionId: cs, agent: "w1", prompt: "crew part one" }, "lead")
    const d2 = await rt.runs.delegate({ parentSessionId: cs, agent: "w2", prompt: "crew part two" }, "lead")
    if (d1.kind !== "task" || d2.kind !== "task") throw new Error("expected tasks")
    expect(d1.task.workflow).toEqual({ id: run.id, step: "member:w1", role: "first", report: "parent" })
    expect(d2.task.workflow).toMatchObject({ id: run.id, step: "member:w2", report: "parent" })
    expect(d1.task.parentSessionId).toBe(cs)
    await flush()
    expect(rt.runs.get(run.id)!.phase).toBe("parallel_execution")
    expect(rt.runs.tasksOf(run.id).map((t) => t.id)).toEqual([coord.id, d1.task.id, d2.task.id])

    // The coordinator's turn ends while its members work: it is not done.
    await finish(cs, "Assigned parts one and two.")
    expect(rt.tasks.get(coord.id)!.status).toBe("running")

    await finish(sid(d1.task), "result of part one")
    // Held for the coordinator until the last member ended.
    expect(rt.deliverer.pending(cs).map((e) => [e.kind, e.taskId])).toEqual([["completion", d1.task.id]])
    expect(host.injections.filter((i) => i.sessionId === cs)).toEqual([])
    // Results waiting for it keep it from completing too.
    await rt.tasks.onIdle(cs)
    await flush()
    expect(rt.tasks.get(coord.id)!.status).toBe("running")

    await finish(sid(d2.task), "result of part two")
    const batches = host.injections.filter((i) => i.sessionId === cs)
    expect(batches).toHaveLength(1)
    expect(batches[0]!.text).toContain("result of part one")
    expect(batches[0]!.text).toContain("result of part two")
    expect(batches[0]!.noReply).toBe(false)
    expect(rt.deliverer.pending(cs)).toEqual([])
    expect(rt.runs.get(run.id)!.phase).toBe("synthesis")
    expect(toRoot()).toEqual([])

    // The batch started the coordinator's turn; it ends with the synthesis.
    rt.sessionBusy(cs, false)
    await finish(cs, "CREW SYNTHESIS: both parts fit.\nDisagreements: none")
    expect(rt.tasks.get(coord.id)).toMatchObject({ status: "completed", result: "CREW SYNTHESIS: both parts fit.\nDisagreements: none" })
    expect(rt.runs.get(run.id)!.phase).toBe("completed")
    const heard = toRoot()
    expect(heard).toHaveLength(1)
    expect(heard[0]).toMatchObject({ kind: "completion", from: "crew", workflowId: run.id })
    expect(heard[0]!.text).toContain("- w1 (first): done")
    expect(heard[0]!.text).toContain("CREW SYNTHESIS: both parts fit.")

    const phases = journalEvents(dir).flatMap((e) =>
      e.type === "workflow.created" && e.workflow.id === run.id ? [e.workflow.phase] : e.type === "workflow.updated" && e.id === run.id && e.patch.phase ? [e.patch.phase] : [],
    )
    expect(phases).toEqual(["delegation", "parallel_execution", "synthesis", "completed"])
    await rt.dispose()
  })
  it("a coordinator that fails while its members work leaves none of them running", async () => {
    const { rt, sid, start, step } = await setup()
    const run = await start("crew", "build the feature")
    const cs = sid(step(run.id, "coordinator"))
    const d = await rt.runs.delegate({ parentSessionId: cs, agent: "w1", prompt: "crew part one" }, "lead")
    if (d.kind !== "task") throw new Error("expected a task")
    await flush()
    await rt.tasks.onError(cs, { name: "APIError", message: "overloaded", aborted: false })
    await flush()
    expect(rt.runs.get(run.id)!.phase).toBe("failed")
    await rt.runs.cancel(run.id, "the user gave up")
    expect(rt.tasks.get(d.task.id)!.status).not.toBe("running")
    await rt.dispose()
  })
})

describe("hierarchical", () => {
  /** org: the boss delegates the crew (a sub-team run) and w3; the crew's lead delegates w1 and w2. */
  async function orgRunning() {
    const ctx = await setup()
    const { rt, sid, finish, start, step } = ctx
    const org = await start("org", "plan the migration")
    const bs = sid(step(org.id, "coordinator"))
    const sub = await rt.runs.delegate({ parentSessionId: bs, agent: "crew", prompt: "migrate the schema" }, "boss")
    const side = await rt.runs.delegate({ parentSessionId: bs, agent: "w3", prompt: "org side job" }, "boss")
    if (sub.kind !== "run" || side.kind !== "task") throw new Error("expected a sub-run and a task")
    await finish(bs, "Assigned.")
    const ls = sid(step(sub.run.id, "coordinator"))
    const parts = [
      await rt.runs.delegate({ parentSessionId: ls, agent: "w1", prompt: "crew part one" }, "lead"),
      await rt.runs.delegate({ parentSessionId: ls, agent: "w2", prompt: "crew part two" }, "lead"),
    ].map((d) => (d.kind === "task" ? d.task : undefined)!)
    await finish(ls, "Assigned.")
    return { ...ctx, org, crew: sub.run, side: side.task, parts, bs, ls }
  }

  it("the sub-team's one result and the worker's reach the boss in one batch; the Oracle hears only the top run", async () => {
    const { rt, host, sid, finish, org, crew, side, parts, bs, ls, toRoot } = await orgRunning()
    expect(crew).toMatchObject({ team: "crew", parentWorkflowId: org.id, depth: 2, parentSessionId: bs })
    expect(side.workflow).toMatchObject({ id: org.id, step: "member:w3" })
    expect(parts.map((t) => t.workflow!.id)).toEqual([crew.id, crew.id])
    await finish(sid(side), "side job result")
    // Held for the boss: its sub-team still works.
    expect(rt.deliverer.pending(bs).map((e) => e.from)).toEqual(["w3"])
    expect(rt.tasks.get(rt.runs.tasksOf(org.id)[0]!.id)!.status).toBe("running")
    for (const [i, t] of parts.entries()) await finish(sid(t), `result of part ${i + 1}`)
    expect(host.injections.filter((i) => i.sessionId === ls)).toHaveLength(1)
    rt.sessionBusy(ls, false)
    await finish(ls, "CREW SYNTHESIS: schema migrated.\nDisagreements: none")
    expect(rt.runs.get(crew.id)!.phase).toBe("completed")
    const batches = host.injections.filter((i) => i.sessionId === bs)
    expect(batches).toHaveLength(1)
    expect(batches[0]!.text).toContain("side job result")
    expect(batches[0]!.text).toMatch(/\[NSO · crew · run wf_\w+ · completion\]/)
    expect(batches[0]!.text).toContain("CREW SYNTHESIS: schema migrated.")
    expect(toRoot()).toEqual([])
    rt.sessionBusy(bs, false)
    await finish(bs, "ORG SYNTHESIS: migration planned.\nDisagreements: none")
    expect(rt.runs.get(org.id)!.phase).toBe("completed")
    expect(toRoot().map((e) => [e.kind, e.from, e.workflowId])).toEqual([["completion", "org", org.id]])
    expect(toRoot()[0]!.text).toContain("ORG SYNTHESIS: migration planned.")
    await rt.dispose()
  })

  it("the run stays in parallel_execution while a sub-team member still works", async () => {
    const { rt, sid, finish, org, crew, side } = await orgRunning()
    await finish(sid(side), "side job result")
    expect(TERMINAL.has(rt.runs.get(crew.id)!.phase)).toBe(false)
    expect(rt.runs.get(org.id)!.phase).toBe("parallel_execution")
    await rt.dispose()
  })

  it("a sub-team that ended partial is listed and makes the run partial", async () => {
    const { rt, sid, finish, fail, org, crew, side, parts, bs, ls, toRoot } = await orgRunning()
    await finish(sid(side), "side job result")
    await fail(sid(parts[0]!))
    await finish(sid(parts[1]!), "result of part 2")
    rt.sessionBusy(ls, false)
    await finish(ls, "CREW SYNTHESIS: half done.\nDisagreements: none")
    expect(rt.runs.get(crew.id)!.phase).toBe("partial")
    rt.sessionBusy(bs, false)
    await finish(bs, "ORG SYNTHESIS\nDisagreements: none")
    const result = toRoot().find((e) => e.kind === "completion" && e.from === "org")!
    expect(result.text).toMatch(/^- team crew \(the crew\): partial/m)
    expect(rt.runs.get(org.id)!.phase).toBe("partial")
    await rt.dispose()
  })
})

describe("sequential", () => {
  it("members run one after another, each handed the previous result; handoffs carry the artifacts; a failed step is marked and the chain goes on", async () => {
    const { rt, host, sid, finish, fail, start, byAgent, toRoot } = await setup()
    const run = await start("chain", "process the data")
    expect(host.prompts.map((p) => p.agent)).toEqual(["w1"])
    await finish(sid(byAgent(run.id, "w1")), "step one done\nArtifacts:\n- out/one.csv")
    expect(host.prompts.map((p) => p.agent)).toEqual(["w1", "w2"])
    expect(host.prompts[1]!.text).toContain("You are step 2 of 3.")
    expect(host.prompts[1]!.text).toContain("step one done\nArtifacts:\n- out/one.csv")
    expect(rt.runs.get(run.id)!.handoffs.map((h) => [h.fromAgent, h.toAgent, h.artifacts])).toEqual([["w1", "w2", ["out/one.csv"]]])
    const w2 = byAgent(run.id, "w2")
    await fail(sid(w2))
    expect(host.prompts.map((p) => p.agent)).toEqual(["w1", "w2", "w3"])
    expect(host.prompts[2]!.text).toContain(`[${w2.id} · w2 · ${w2.title} · FAILED: no result — APIError: boom]`)
    expect(toRoot().map((e) => e.kind)).toEqual(["escalation"])
    await finish(sid(byAgent(run.id, "w3")), "CHAIN FINAL: done without step two")
    const r = rt.runs.get(run.id)!
    expect(r.phase).toBe("partial")
    expect(r.handoffs.map((h) => [h.fromAgent, h.toAgent, h.artifacts])).toEqual([
      ["w1", "w2", ["out/one.csv"]],
      ["w2", "w3", []],
    ])
    const result = toRoot().find((e) => e.kind === "completion")!
    expect(result).toMatchObject({ from: "chain", workflowId: run.id })
    expect(result.text).toContain("Handoffs: w1 → w2 (out/one.csv); w2 → w3")
    expect(result.text).toContain("CHAIN FINAL: done without step two")
    expect(toRoot()).toHaveLength(2)
    await rt.dispose()
  })
})

describe("wait_for_all: false", () => {
  it("each member reports on its own; the run ends only once every member ended", async () => {
    const { rt, sid, finish, start, byAgent, toRoot } = await setup()
    const run = await start("loose")
    const w1 = byAgent(run.id, "w1")
    await finish(sid(w1), "w1 result")
    expect(toRoot().map((e) => [e.kind, e.from, e.taskId])).toEqual([["completion", "w1", w1.id]])
    expect(rt.runs.get(run.id)!.phase).toBe("parallel_execution")
    await finish(sid(byAgent(run.id, "w2")), "w2 result")
    expect(rt.runs.get(run.id)!.phase).toBe("completed")
    await rt.dispose()
  })
})

describe("team rules", () => {
  it("max_parallel 1: one member session works at a time", async () => {
    const { rt, host, sid, finish, start, toRoot } = await setup()
    const run = await start("single")
    const working = () => rt.runs.tasksOf(run.id).filter((t) => t.status === "running")
    for (let n = 1; n <= 3; n++) {
      expect(host.prompts).toHaveLength(n)
      expect(working()).toHaveLength(1)
      await finish(sid(working()[0]!), `part ${n}`)
    }
    expect(host.prompts).toHaveLength(3)
    expect(rt.runs.get(run.id)!.phase).toBe("completed")
    expect(toRoot().map((e) => e.kind)).toEqual(["completion"])
    await rt.dispose()
  })

  it("max_turns_per_agent 2: a third model turn stops the member as failed, naming the limit", async () => {
    const { rt, host, deps, sid, start, byAgent } = await setup()
    const run = await start("turns")
    const w1 = byAgent(run.id, "w1")
    const s = sid(w1)
    const turn = (id: string) => rt.tasks.observeAssistant(s, id, { completed: false, createdAt: deps.time.now })
    turn("msg_turn01")
    turn("msg_turn01") // the same message again is the same turn
    turn("msg_turn02")
    await flush()
    expect(rt.tasks.get(w1.id)!.status).toBe("running")
    turn("msg_turn03")
    await flush()
    expect(rt.tasks.get(w1.id)).toMatchObject({ status: "failed", error: "stopped: it reached its limit of 2 model turns" })
    expect(host.aborted).toContain(s)
    // The other member's turns are its own.
    expect(byAgent(run.id, "w2").status).toBe("running")
    await rt.dispose()
  })

  it("timeout_per_agent_ms: past the limit on the injected clock the member is stopped as failed; the run ends partial", async () => {
    const { rt, host, deps, sid, finish, start, byAgent, toRoot } = await setup()
    const run = await start("timed", "count the rows")
    const w4 = byAgent(run.id, "w4")
    expect(w4.timeoutMs).toBe(1500)
    await finish(sid(byAgent(run.id, "w1")), "w1 counted 42 rows")
    deps.time.advance(1499)
    await flush()
    expect(rt.tasks.get(w4.id)!.status).toBe("running")
    deps.time.advance(2)
    await flush()
    expect(rt.tasks.get(w4.id)).toMatchObject({ status: "failed", error: "stopped: it ran longer than its 1.5 s limit" })
    expect(host.aborted).toContain(sid(w4))
    expect(rt.runs.get(run.id)!.phase).toBe("partial")
    const heard = toRoot()
    expect(heard.map((e) => e.kind).sort()).toEqual(["completion", "escalation"])
    const result = heard.find((e) => e.kind === "completion")!
    expect(result.text).toContain("## w1\nw1 counted 42 rows")
    expect(result.text).toContain("1 of 2 member(s) gave no result")
    expect(result.text).toContain("- w4: failed — stopped: it ran longer than its 1.5 s limit")
    expect(heard.find((e) => e.kind === "escalation")!.text).toContain("member w4 failed")
    await rt.dispose()
  })
})

describe("cancel", () => {
  it("cancels every live task of the run and its sub-run, ends both cancelled, and says so once", async () => {
    const { rt, host, sid, finish, start, step, toRoot } = await setup()
    const org = await start("org", "plan the migration")
    const boss = step(org.id, "coordinator")
    const bs = sid(boss)
    const sub = await rt.runs.delegate({ parentSessionId: bs, agent: "crew", prompt: "migrate the schema" }, "boss")
    const side = await rt.runs.delegate({ parentSessionId: bs, agent: "w3", prompt: "org side job" }, "boss")
    if (sub.kind !== "run" || side.kind !== "task") throw new Error("expected a sub-run and a task")
    expect(sub.run).toMatchObject({ team: "crew", parentWorkflowId: org.id, depth: 2, parentSessionId: bs })
    expect(side.task.workflow!.id).toBe(org.id)
    // The boss's turn ends: it waits (without a model slot) for what it started.
    await finish(bs, "Assigned.")
    const ls = sid(step(sub.run.id, "coordinator"))
    const part = await rt.runs.delegate({ parentSessionId: ls, agent: "w1", prompt: "crew part one" }, "lead")
    if (part.kind !== "task") throw new Error("expected a task")
    expect(part.task.workflow!.id).toBe(sub.run.id)
    await finish(ls, "Assigned.")
    const all = [...rt.runs.tasksOf(org.id), ...rt.runs.tasksOf(sub.run.id)]
    expect(all.map((t) => t.status)).toEqual(["running", "running", "running", "running"])

    const gone = await rt.runs.cancel(org.id, "the user changed plans")
    await flush()
    expect(gone.map((t) => t.id).sort()).toEqual(all.map((t) => t.id).sort())
    for (const t of all) expect(rt.tasks.get(t.id)!.status).toBe("cancelled")
    expect(host.aborted.sort()).toEqual(all.map((t) => sid(t)).sort())
    expect(rt.runs.get(org.id)!.phase).toBe("cancelled")
    expect(rt.runs.get(sub.run.id)!.phase).toBe("cancelled")
    const heard = toRoot()
    expect(heard.map((e) => [e.kind, e.from, e.workflowId])).toEqual([["status", "nso", org.id]])
    expect(heard[0]!.text).toContain(`Team run ${org.id} ("org": plan the migration) was cancelled: the user changed plans; 4 task(s) stopped.`)
    expect(rt.deliverer.pending(bs)).toEqual([])
    // Cancelling again does nothing more.
    expect(await rt.runs.cancel(org.id, "again")).toEqual([])
    expect(toRoot()).toHaveLength(1)
    await rt.dispose()
  })
})

describe("restart", () => {
  it("a run whose members all ended while NSO was down reports once after the restart", async () => {
    const dir = tempDir()
    const first = await setup({}, dir)
    const run = await first.start("pair", "inspect the table")
    const tasks = first.rt.runs.tasksOf(run.id)
    expect(tasks.map((t) => t.status)).toEqual(["running", "running"])
    // The members' ends reached the journal; the run's own end did not (NSO went down in between).
    for (const t of tasks) await first.rt.write({ type: "task.updated", id: t.id, patch: { status: "completed", result: `checked by ${t.agent}` } })
    await first.rt.journal.close()

    const second = await setup({}, dir, fakeDeps())
    expect(second.rt.runs.get(run.id)!.phase).toBe("parallel_execution")
    await second.rt.startBackground()
    await flush()
    await second.rt.startBackground()
    await flush()
    expect(second.rt.runs.get(run.id)!.phase).toBe("completed")
    const heard = second.toRoot().filter((e) => e.workflowId === run.id)
    expect(heard.map((e) => [e.kind, e.from])).toEqual([["completion", "pair"]])
    expect(heard[0]!.text).toContain("## w1\nchecked by w1")
    expect(heard[0]!.text).toContain("## w2\nchecked by w2")
    // Nothing was started again.
    expect(second.host.prompts).toEqual([])
    await second.rt.dispose()
  })

  it("members whose agents finished while NSO was down complete on restart; the run reports once", async () => {
    const dir = tempDir()
    const first = await setup({}, dir)
    const run = await first.start("pair", "inspect the table")
    const tasks = first.rt.runs.tasksOf(run.id)
    await first.rt.journal.close()
    const deps = fakeDeps()
    for (const t of tasks) deps.fakeHost.outcomes.set(t.sessionId!, { completed: true, text: `checked by ${t.agent}`, createdAt: Number.MAX_SAFE_INTEGER })
    const second = await setup({}, dir, deps)
    await second.rt.startBackground()
    await flush()
    expect(second.rt.runs.tasksOf(run.id).map((t) => t.status)).toEqual(["completed", "completed"])
    expect(second.rt.runs.get(run.id)!.phase).toBe("completed")
    expect(second.toRoot().map((e) => [e.kind, e.from, e.workflowId])).toEqual([["completion", "pair", run.id]])
    expect(second.host.prompts).toEqual([])
    await second.rt.dispose()
  })

  it("a run with a step missing from the journal gets it started by recover, once", async () => {
    const dir = tempDir()
    const first = await setup({}, dir)
    const goal = "assess the plan"
    const id = "wf_crashed1"
    const plan = planRun(first.rt.teams.get("panel")!, goal, id)
    const now = first.deps.time.now
    // NSO went down while starting the run: the run and its first member are journaled, the rest not.
    await first.rt.write({
      type: "workflow.created",
      workflow: { id, team: "panel", pattern: "parallel", goal, title: goal, parentSessionId: "ses_root", depth: 1, phase: "parallel_execution", startedBy: "oracle", handoffs: [], createdAt: now, updatedAt: now },
    })
    const s0 = plan.steps[0]!
    await first.rt.write({
      type: "task.created",
      task: { id: "tsk_crashed1", agent: s0.agent, title: s0.title, prompt: s0.prompt, priority: "medium", status: "queued", parentSessionId: "ses_root", depth: 1, scope: [], dependsOn: [], workflow: { id, step: s0.step, report: "workflow" }, createdAt: now, updatedAt: now, lastActivityAt: now },
    })
    await first.rt.journal.close()

    const second = await setup({}, dir, fakeDeps())
    await second.rt.startBackground()
    await flush()
    const tasks = second.rt.runs.tasksOf(id)
    expect(tasks.map((t) => [t.workflow!.step, t.agent])).toEqual([
      ["member:0", "w1"],
      ["member:1", "w2"],
      ["member:2", "w3"],
      ["synthesis", "lead"],
    ])
    expect(tasks[0]!.id).toBe("tsk_crashed1")
    expect(tasks[3]!.dependsOn).toEqual(tasks.slice(0, 3).map((t) => t.id))
    expect(second.host.prompts.map((p) => p.agent).sort()).toEqual(["w1", "w2", "w3"])
    expect(second.host.prompts.find((p) => p.agent === "w2")!.text).toBe(plan.steps[1]!.prompt)

    // And the recovered run goes on to its one result.
    for (const t of tasks.slice(0, 3)) await second.finish(second.sid(t), `finding from ${t.agent}`)
    await second.finish(second.sid(second.step(id, "synthesis")), "RECOVERED SYNTHESIS\nDisagreements: none")
    expect(second.rt.runs.get(id)!.phase).toBe("completed")
    expect(second.toRoot().filter((e) => e.workflowId === id).map((e) => e.kind)).toEqual(["completion"])
    await second.rt.dispose()
  })
})

describe("sub-team depth", () => {
  const deepTeams = {
    ...TEAMS,
    mid: { description: "A lead over the crew", pattern: "hierarchical", coordinator: "lead", members: [{ team: "crew" }, { agent: "w3" }] },
    deep: { description: "A boss over mid", pattern: "hierarchical", coordinator: "boss", members: [{ team: "mid" }], rules: { max_depth: 1 } },
  }

  it("the loader leaves out a hierarchical team whose sub-teams nest deeper than its max_depth", async () => {
    const { rt } = await setup({ teams: deepTeams })
    expect(rt.teams.has("mid")).toBe(true)
    expect(rt.teams.has("deep")).toBe(false)
    expect(rt.notices.unseen("ses_x").join("\n")).toMatch(/sub-teams nest 2 levels deep under team "deep", more than its rules\.max_depth \(1\)/)
    await rt.dispose()
  })

  it("the runner refuses a sub-team start beyond the top team's max_depth (a team that got past the loader)", async () => {
    const { rt, sid, start, step } = await setup({ teams: deepTeams })
    // Only reachable if the loader's check were missed: put the team in by hand.
    ;(rt.teams as Map<string, Team>).set("deep", team({ name: "deep", ...deepTeams.deep }))
    const top = await start("deep", "reorganise")
    const mid = await rt.runs.delegate({ parentSessionId: sid(step(top.id, "coordinator")), agent: "mid", prompt: "mid: do your part" }, "boss")
    if (mid.kind !== "run") throw new Error("expected a sub-run")
    expect(mid.run.depth).toBe(2)
    await flush()
    const err = await rt.runs.delegate({ parentSessionId: sid(step(mid.run.id, "coordinator")), agent: "crew", prompt: "crew: go" }, "lead").catch((e: unknown) => e)
    expect(err).toBeInstanceOf(TaskError)
    expect((err as Error).message).toBe('Sub-teams nest too deep here (2 levels under team "deep", whose max_depth is 1). Delegate to an agent instead.')
    expect([...rt.state.workflows.values()].filter((w) => w.team === "crew")).toEqual([])
    await rt.dispose()
  })
})
