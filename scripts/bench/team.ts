import { readFileSync } from "node:fs"
import { availableParallelism } from "node:os"
import { join } from "node:path"
import { MockModel, type RecordedRequest } from "../harness/mock-model.js"
import { readJsonl, startOpencode, type RunningOpencode } from "../harness/opencode.js"
import { fmtMs, percentile, type Row, type Rec, allIdle } from "./util.js"

/**
 * The team benchmark (issue "Teams of specialist agents"): a parallel team of 8 members whose
 * model takes 1 s each, concurrency 8, and a coordinator whose synthesis takes `SYNTH_MS`. Wall
 * time runs from the run's `workflow.created` record (written by the Oracle's `delegate` call)
 * to the team result stored in the Oracle's session (`delivery.confirmed` of the batch carrying
 * the run's envelope). Ideal = 1 s + the synthesis; the seed target is wall / ideal ≤ 1.10.
 * Every phase is cut from NSO's journal and the model's request log (both `Date.now()` on this
 * machine); consecutive phases, so they add up to the wall time.
 *
 * NSO runs with the options a user gets (only the team, its profiles and `tasks.concurrency: 8`
 * are set) unless a variant says otherwise. Beside it, on a server without NSO and with the same
 * OpenCode config, a plain SDK client does the same shape: 8 child sessions created and prompted
 * at once, a synthesis session prompted with their replies once every member's (blocking) prompt
 * has returned, the result prompted into the root session. That is what the shape costs in
 * OpenCode itself on this machine, phase by phase, next to NSO's. Runs alternate between the two
 * servers (a change in the machine's load hits both), each in a new root session, after one
 * warm-up run on each.
 */

const MEMBERS = 8
const MEMBER_MS = 1000
const SYNTH_MS = 200
const IDEAL = MEMBER_MS + SYNTH_MS
const TEAM = "bench8"

const median = (xs: number[]) => percentile(xs, 50)
const range = (xs: number[]) => `${fmtMs(Math.min(...xs))}–${fmtMs(Math.max(...xs))}`
const ratios = (xs: number[]) => `${(Math.min(...xs) / IDEAL).toFixed(2)}–${(Math.max(...xs) / IDEAL).toFixed(2)}`

/** CPU time the server process and its reaped children (git, for snapshots) have used, in ms (Linux /proc; NaN elsewhere). */
function cpuMs(oc: RunningOpencode): number {
  try {
    const stat = readFileSync(`/proc/${oc.process.pid}/stat`, "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
    return (f[11]! + f[12]! + f[13]! + f[14]!) * 10
  } catch {
    return NaN
  }
}

/** The timeline both sides share (ms since epoch). */
interface Common {
  /** NSO: `workflow.created`; alone: before the first child session is made. */
  start: number
  memberReq: number[]
  memberDone: number[]
  synthReq: number
  synthDone: number
  /** NSO: the run's `completed` record; alone: the synthesis prompt returned. */
  completed: number
  /** NSO: `delivery.confirmed`; alone: `promptAsync` into the root returned. */
  delivered: number
  /** Server CPU for the run, its root session's turns included (ms). */
  cpu: number
}

/** What only NSO's journal tells. */
interface NsoDetail {
  toolResult: number
  memberCreated: number[]
  memberRunning: number[]
  memberCompleted: number[]
  synthRunning: number
  synthCompleted: number
  buffered: number
  deliveryStarted: number
  oracleReq: number
}

/** Consecutive phases of one run: they sum to `wall`. */
function phases(s: Common) {
  const firstReq = Math.min(...s.memberReq)
  const lastReq = Math.max(...s.memberReq)
  const lastDone = Math.max(...s.memberDone)
  return {
    wall: s.delivered - s.start,
    cpu: s.cpu,
    launch: firstReq - s.start,
    spread: lastReq - firstReq,
    memberModel: lastDone - lastReq,
    toSynth: s.synthReq - lastDone,
    synthModel: s.synthDone - s.synthReq,
    toCompleted: s.completed - s.synthDone,
    toOracle: s.delivered - s.completed,
    memberEach: s.memberReq.map((at, i) => s.memberDone[i]! - at),
  }
}

function nsoDetail(s: Common, d: NsoDetail) {
  const firstReq = Math.min(...s.memberReq)
  const lastDone = Math.max(...s.memberDone)
  const lastCompleted = Math.max(...d.memberCompleted)
  return {
    createdToFirstTask: Math.min(...d.memberCreated) - s.start,
    firstTaskToFirstRunning: Math.min(...d.memberRunning) - Math.min(...d.memberCreated),
    firstRunningToFirstReq: firstReq - Math.min(...d.memberRunning),
    createdSpread: Math.max(...d.memberCreated) - Math.min(...d.memberCreated),
    runningSpread: Math.max(...d.memberRunning) - Math.min(...d.memberRunning),
    runningToReq: s.memberReq.map((at, i) => at - d.memberRunning[i]!),
    lastDoneToTaskCompleted: lastCompleted - lastDone,
    taskCompletedToSynthRunning: d.synthRunning - lastCompleted,
    synthRunningToReq: s.synthReq - d.synthRunning,
    synthDoneToTaskCompleted: d.synthCompleted - s.synthDone,
    completedToBuffered: d.buffered - s.completed,
    bufferedToStarted: d.deliveryStarted - d.buffered,
    startedToConfirmed: s.delivered - d.deliveryStarted,
    confirmedToOracleReq: d.oracleReq - s.delivered,
    toolResultAfterCreated: d.toolResult - s.start,
  }
}

const worker = (n: string) => ({ description: `Bench worker ${n}`, prompt: `You are bench worker ${n}.` })
const names = Array.from({ length: MEMBERS }, (_, i) => `w${i + 1}`)

/** One team run on NSO's server, from the Oracle's prompt to its turn on the team result. */
async function nsoRun(oc: RunningOpencode, model: MockModel, i: number): Promise<{ common: Common; detail: NsoDetail }> {
  const goal = `bench goal ${i}`
  const root = (await oc.client.session.create({ body: { title: `team bench ${i}` } })).data!.id
  const cpu0 = cpuMs(oc)
  await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: `team run ${i}` }] } })
  const toolResult = await model.waitFor((r) => r.lastUser === `team run ${i}` && !!r.lastToolResult?.includes("Started team run"), 20_000)
  const oracleReq = await model.waitFor((r) => r.lastUser.includes(`TEAM SYNTHESIS ${i}:`) && !r.lastUser.includes("You synthesise"), 30_000)
  await allIdle(oc)
  const cpu = cpuMs(oc) - cpu0

  const recs = readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]
  const run = recs.find((r) => r.e.type === "workflow.created" && (r.e.workflow as { goal: string }).goal === goal)
  if (!run) throw new Error(`bench team: no workflow.created for "${goal}"`)
  const runId = (run.e.workflow as { id: string }).id
  const tasks = recs
    .filter((r) => r.e.type === "task.created" && (r.e.task as { workflow?: { id: string } }).workflow?.id === runId)
    .map((r) => ({ ...(r.e.task as { id: string; agent: string; workflow: { step: string } }), createdAt: r.t }))
  const update = (id: string, status: string) => {
    const r = recs.find((x) => x.e.type === "task.updated" && x.e.id === id && (x.e.patch as { status?: string }).status === status)
    if (!r) throw new Error(`bench team: task ${id} has no "${status}" record`)
    return r.t
  }
  const completedRec = recs.find((x) => x.e.type === "workflow.updated" && x.e.id === runId && (x.e.patch as { phase?: string }).phase === "completed")
  const members = tasks.filter((t) => t.workflow.step.startsWith("member:"))
  const synth = tasks.find((t) => t.workflow.step === "synthesis")
  if (members.length !== MEMBERS || !synth || !completedRec) throw new Error(`bench team: run ${runId} has ${members.length} members, ${synth ? "a" : "no"} synthesis task, ${completedRec ? "a" : "no"} completed record`)

  // Member prompts say "Team goal: …", the synthesis prompt "Goal: …".
  const ofGoal = (r: RecordedRequest) => !r.lastToolResult && /goal: /i.test(r.lastUser) && r.lastUser.includes(`oal: ${goal}\n`)
  const memberReqs = model.requests.filter((r) => ofGoal(r) && /You are w\d\./.test(r.lastUser))
  const synthReq = model.requests.find((r) => ofGoal(r) && r.lastUser.includes("You synthesise this team's work"))
  if (memberReqs.length !== MEMBERS || !synthReq) throw new Error(`bench team: saw ${memberReqs.length} member requests and ${synthReq ? "a" : "no"} synthesis request for "${goal}"`)
  // Each member's task, in the order of the model requests (every member is a different agent).
  const taskOf = memberReqs.map((r) => members.find((m) => m.agent === /You are (w\d)\./.exec(r.lastUser)![1])!)

  const buffered = recs.find((r) => r.e.type === "message.buffered" && (r.e.envelope as { workflowId?: string }).workflowId === runId && (r.e.envelope as { kind: string }).kind === "completion")
  const msgId = (buffered?.e.envelope as { id: string } | undefined)?.id
  const started = recs.find((r) => r.e.type === "delivery.started" && !!msgId && (r.e.ids as string[]).includes(msgId))
  const confirmed = recs.find((r) => r.e.type === "delivery.confirmed" && !!started && r.e.batchId === started.e.batchId)
  if (!buffered || !started || !confirmed) throw new Error(`bench team: run ${runId}'s result was not delivered (buffered ${!!buffered}, started ${!!started}, confirmed ${!!confirmed})`)

  return {
    common: {
      start: run.t,
      memberReq: memberReqs.map((r) => r.at),
      memberDone: memberReqs.map((r) => r.respondedAt),
      synthReq: synthReq.at,
      synthDone: synthReq.respondedAt,
      completed: completedRec.t,
      delivered: confirmed.t,
      cpu,
    },
    detail: {
      toolResult: toolResult.at,
      memberCreated: taskOf.map((t) => t.createdAt),
      memberRunning: taskOf.map((t) => update(t.id, "running")),
      memberCompleted: taskOf.map((t) => update(t.id, "completed")),
      synthRunning: update(synth.id, "running"),
      synthCompleted: update(synth.id, "completed"),
      buffered: buffered.t,
      deliveryStarted: started.t,
      oracleReq: oracleReq.at,
    },
  }
}

/** The same shape on a server without NSO, driven through the SDK. */
async function aloneRun(oc: RunningOpencode, model: MockModel, i: number): Promise<Common> {
  const root = (await oc.client.session.create({ body: { title: `alone ${i}` } })).data!.id
  // The root has had a turn, as the Oracle's session has on NSO's side.
  await oc.client.session.prompt({ path: { id: root }, body: { parts: [{ type: "text", text: `alone warm ${i}` }] } })
  const cpu0 = cpuMs(oc)
  const start = Date.now()
  const replies = await Promise.all(
    names.map(async (n) => {
      const s = (await oc.client.session.create({ body: { parentID: root, title: `${n}: alone ${i}` } })).data!.id
      await oc.client.session.prompt({ path: { id: s }, body: { parts: [{ type: "text", text: `alone member ${i} ${n}` }] } })
      return `finding from ${n}`
    }),
  )
  const s = (await oc.client.session.create({ body: { parentID: root, title: `synthesis: alone ${i}` } })).data!.id
  await oc.client.session.prompt({ path: { id: s }, body: { parts: [{ type: "text", text: `alone synthesis ${i}\n${replies.join("\n")}` }] } })
  const completed = Date.now()
  await oc.client.session.promptAsync({ path: { id: root }, body: { parts: [{ type: "text", text: `alone result ${i}: all eight agree` }] } })
  const delivered = Date.now()
  await model.waitFor((r) => r.lastUser.startsWith(`alone result ${i}:`), 20_000)
  await allIdle(oc)
  const cpu = cpuMs(oc) - cpu0
  const memberReqs = model.requests.filter((r) => new RegExp(`^alone member ${i} w\\d$`).test(r.lastUser))
  const synthReq = model.requests.find((r) => r.lastUser.startsWith(`alone synthesis ${i}\n`))
  if (memberReqs.length !== MEMBERS || !synthReq) throw new Error(`bench team: OpenCode alone saw ${memberReqs.length} member requests, ${synthReq ? "a" : "no"} synthesis request`)
  return {
    start,
    memberReq: memberReqs.map((r) => r.at),
    memberDone: memberReqs.map((r) => r.respondedAt),
    synthReq: synthReq.at,
    synthDone: synthReq.respondedAt,
    completed,
    delivered,
    cpu,
  }
}

/**
 * Runs the team benchmark: NSO's team run and OpenCode alone, `runs` times each, alternating.
 * `nso` adds to (or overrides) the NSO options the bench sets; `snapshot: false` turns
 * OpenCode's per-step snapshots off on both servers; `label` names the variant in the rows.
 */
export async function teamBench(opts: { runs?: number; nso?: Record<string, unknown>; label?: string; snapshot?: boolean } = {}): Promise<Row[]> {
  const runs = opts.runs ?? 5
  const section = opts.label ? `team, ${opts.label}` : "team"
  const config = opts.snapshot === false ? { snapshot: false } : {}
  const nsoModel = new MockModel()
  const aloneModel = new MockModel()
  const servers: RunningOpencode[] = []
  try {
    await nsoModel.start()
    await aloneModel.start()
    const nso = await startOpencode({
      modelUrl: nsoModel.url,
      config,
      nso: {
        tasks: { concurrency: MEMBERS },
        agents: {
          ...Object.fromEntries(names.map((n) => [n, worker(n)])),
          lead: { description: "Sums up the bench team's findings", prompt: "You lead the bench team.", role: "coordinator" },
        },
        teams: {
          [TEAM]: { description: "Eight workers at once, a lead sums up", pattern: "parallel", coordinator: "lead", members: names.map((agent) => ({ agent })) },
        },
        ...opts.nso,
      },
    })
    servers.push(nso)
    const alone = await startOpencode({ modelUrl: aloneModel.url, plugin: false, config })
    servers.push(alone)
    nsoModel.script([
      { when: { userMatch: "^team run (\\d+)$" }, reply: { toolCalls: [{ name: "delegate", args: { agent: TEAM, prompt: "bench goal $1", title: "bench run $1" } }] } },
      { when: { toolResult: "Started team run" }, reply: { text: "The team is on it." } },
      { when: { userMatch: "You synthesise this team's work\\. Goal: bench goal (\\d+)" }, reply: { text: "TEAM SYNTHESIS $1: all eight agree.\nDisagreements: none", delayMs: SYNTH_MS } },
      { when: { userMatch: "You are (w\\d)\\." }, reply: { text: "finding from $1", delayMs: MEMBER_MS } },
      { when: { user: "TEAM SYNTHESIS" }, reply: { text: "noted" } },
    ])
    aloneModel.script([
      { when: { userMatch: "^alone member \\d+ (w\\d)$" }, reply: { text: "finding from $1", delayMs: MEMBER_MS } },
      { when: { userMatch: "^alone synthesis (\\d+)" }, reply: { text: "SYNTHESIS $1: all eight agree.", delayMs: SYNTH_MS } },
    ])

    // Warm-up: the first run pays for each server's first sessions (and NSO's first tasks).
    await nsoRun(nso, nsoModel, 0)
    await aloneRun(alone, aloneModel, 0)
    const ns: Awaited<ReturnType<typeof nsoRun>>[] = []
    const os: Common[] = []
    for (let i = 1; i <= runs; i++) {
      ns.push(await nsoRun(nso, nsoModel, i))
      os.push(await aloneRun(alone, aloneModel, i))
    }

    const np = ns.map((s) => phases(s.common))
    const nd = ns.map((s) => nsoDetail(s.common, s.detail))
    const op = os.map(phases)
    type P = ReturnType<typeof phases>
    type D = ReturnType<typeof nsoDetail>
    const col = <K extends keyof P>(xs: P[], k: K) => xs.map((s) => s[k] as number)
    const det = <K extends keyof D>(k: K) => fmtMs(median(nd.map((s) => s[k] as number)))
    // A phase: NSO's p50 (its range), and OpenCode alone's p50 for the same stretch.
    const phase = (k: keyof P, figure: string, note: string): Row => ({
      section,
      figure,
      value: `p50 ${fmtMs(median(col(np, k)))}`,
      target: `alone ${fmtMs(median(col(op, k)))}`,
      note: `${range(col(np, k))}${note ? `; ${note}` : ""}`,
    })
    const wall = col(np, "wall")
    const aloneWall = col(op, "wall")
    return [
      {
        section,
        figure: `parallel team of ${MEMBERS} × ${MEMBER_MS / 1000} s model + ${SYNTH_MS} ms synthesis, concurrency ${MEMBERS}: wall / ideal`,
        value: `p50 ${(median(wall) / IDEAL).toFixed(2)}`,
        target: "≤ 1.10",
        note: `runs ${ratios(wall)}; wall p50 ${fmtMs(median(wall))}, ideal ${fmtMs(IDEAL)}; run created → result stored in the Oracle's session (the delegate's tool result reached the model ${det("toolResultAfterCreated")} after the run was created); ${runs} runs after a warm-up`,
      },
      {
        section,
        figure: "  the same shape on OpenCode alone (SDK, no NSO): wall / ideal",
        value: `p50 ${(median(aloneWall) / IDEAL).toFixed(2)}`,
        note: `runs ${ratios(aloneWall)}; wall p50 ${fmtMs(median(aloneWall))}; NSO's wall minus this: p50 ${fmtMs(median(wall) - median(aloneWall))}`,
      },
      {
        section,
        figure: "  server CPU per run (OpenCode process and children)",
        value: `p50 ${fmtMs(median(col(np, "cpu")))}`,
        target: `alone ${fmtMs(median(col(op, "cpu")))}`,
        note: `${range(col(np, "cpu"))}; 9 sessions' turns plus the root's (NSO: 3 Oracle turns, alone: 1); on ${availableParallelism()} cores`,
      },
      phase("launch", "  1. run created → first member model request", `→ first task.created ${det("createdToFirstTask")}; → it runs (session made) ${det("firstTaskToFirstRunning")}; → its model request ${det("firstRunningToFirstReq")}`),
      phase(
        "spread",
        "  2. first → last member model request",
        `task.created records spread over ${det("createdSpread")}, running records over ${det("runningSpread")}; a member's running → model request ${range(nd.flatMap((s) => s.runningToReq))}`,
      ),
      phase("memberModel", "  3. last member request → last member reply ended", `each member's model ${range(np.flatMap((s) => s.memberEach))} (scripted ${fmtMs(MEMBER_MS)})`),
      phase(
        "toSynth",
        "  4. last member reply ended → synthesis model request",
        `→ its task completed ${det("lastDoneToTaskCompleted")}; → synthesis task running ${det("taskCompletedToSynthRunning")}; → its model request ${det("synthRunningToReq")}`,
      ),
      phase("synthModel", "  5. synthesis model", `scripted ${fmtMs(SYNTH_MS)}`),
      phase("toCompleted", "  6. synthesis reply ended → run completed record", `synthesis task completed after ${det("synthDoneToTaskCompleted")}`),
      phase(
        "toOracle",
        "  7. run completed → result stored in the Oracle's session",
        `→ buffered ${det("completedToBuffered")}; → delivery.started ${det("bufferedToStarted")}; → confirmed ${det("startedToConfirmed")}; the Oracle's model request ${det("confirmedToOracleReq")} later`,
      ),
    ]
  } finally {
    for (const oc of servers) await oc.dispose()
    await nsoModel.stop()
    await aloneModel.stop()
  }
}
