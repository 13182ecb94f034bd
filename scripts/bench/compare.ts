import { readFileSync } from "node:fs"
import { dirname, join } from "node:path"
import { MockModel, type Rule } from "../harness/mock-model.js"
import { cleanup, readJsonl, startOpencode, type OpencodeOptions, type RunningOpencode } from "../harness/opencode.js"
import { fmtMs, percentile, type Row, type Rec, until, allIdle } from "./util.js"

/**
 * NSO against OpenCode's own mechanisms on the same scripted work in the same run. Both servers
 * run side by side with `"snapshot": false` (OpenCode's per-step git snapshots otherwise dominate
 * and swing widely; `twenty-snapshots` runs one round with them on, as OpenCode does by default),
 * and the runs alternate between them so a change in the machine's load hits both alike.
 *
 * - `compare`: one background delegation whose child's model takes 2 s, parent idle. OpenCode's
 *   side is its experimental background mode: `OPENCODE_EXPERIMENTAL_BACKGROUND_SUBAGENTS=true`,
 *   the built-in `task` tool called with `background: true` by the default `build` agent, child
 *   agent `general`. When the child's prompt ends, OpenCode itself prompts the parent (in
 *   process) with a synthetic `<task id=… state="completed">…<task_result>…` user message, which
 *   starts a model turn. NSO's side: the Oracle's `delegate`, `buffer.pauseMs: 0`; its result
 *   goes in through the HTTP API (`promptAsync`), the only way a plugin has.
 * - `twenty`: twenty trivial tasks at concurrency 3. NSO: one model reply with twenty `delegate`
 *   calls → the last completion delivered into the Oracle's session. OpenCode alone: twenty
 *   child sessions made through the SDK and prompted with at most three in flight. Each task's
 *   life is cut into stages from OpenCode's log, NSO's journal and the model's requests.
 */

type Msg = { info: { role: string; time: { created: number } }; parts: { type: string; text?: string }[] }
interface Side {
  oc: RunningOpencode
  model: MockModel
}

const median = (xs: number[]) => percentile(xs, 50)
const spread = (xs: number[]) => `${fmtMs(Math.min(...xs))}–${fmtMs(Math.max(...xs))}`
const ratio = (a: number, b: number) => `×${(a / b).toFixed(2)}`
const journal = (oc: RunningOpencode) => readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]
const bare = (env: Record<string, string> = {}): Omit<OpencodeOptions, "modelUrl"> => ({ plugin: false, env })

/**
 * A scripted model and a server per entry (no snapshots unless the entry's config says so), all
 * stopped and their temp folders removed afterwards.
 */
async function withSides<T>(configs: Omit<OpencodeOptions, "modelUrl">[], fn: (sides: Side[]) => Promise<T>): Promise<T> {
  const sides: Side[] = []
  const models: MockModel[] = []
  try {
    for (const c of configs) {
      const model = new MockModel()
      models.push(model)
      await model.start()
      sides.push({ model, oc: await startOpencode({ ...c, modelUrl: model.url, config: { snapshot: false, ...c.config } }) })
    }
    return await fn(sides)
  } finally {
    for (const s of sides) {
      await s.oc.dispose()
      cleanup(dirname(s.oc.projectDir))
    }
    for (const m of models) await m.stop()
  }
}

/** From OpenCode's own log (`--print-logs`): when each session's prompt loop last exited. */
function loopExits(oc: RunningOpencode): Map<string, number> {
  const exit = new Map<string, number>()
  for (const line of oc.logs().split("\n")) {
    const m = /^timestamp=(\S+) .*message="exiting loop" session\.id=(\S+)/.exec(line)
    if (m) exit.set(m[2]!, Date.parse(m[1]!))
  }
  return exit
}

/**
 * From OpenCode's log: how long the turn a prompt started spent preparing its first model call,
 * from its loop's first step (`loop`) to the model call (`process`), for the first turn of
 * `sessionId` that starts at or after `after` (ms since epoch).
 */
function turnStartup(oc: RunningOpencode, sessionId: string, after: number): number {
  let loop: number | undefined
  for (const line of oc.logs().split("\n")) {
    const m = /^timestamp=(\S+) .*message=(loop|process) session\.id=(\S+)/.exec(line)
    if (!m || m[3] !== sessionId) continue
    const t = Date.parse(m[1]!)
    if (t < after - 2) continue
    if (m[2] === "loop" && loop === undefined) loop = t
    else if (m[2] === "process" && loop !== undefined) return t - loop
  }
  return NaN
}

/**
 * CPU time the server process and its reaped children (git, for snapshots) have used, in ms, from
 * Linux's /proc (utime, stime, cutime, cstime in USER_HZ = 100 ticks); NaN elsewhere.
 */
function cpuMs(oc: RunningOpencode): number {
  try {
    const stat = readFileSync(`/proc/${oc.process.pid}/stat`, "utf8")
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ").map(Number)
    return (f[11]! + f[12]! + f[13]! + f[14]!) * 10
  } catch {
    return NaN
  }
}

async function messages(oc: RunningOpencode, id: string): Promise<Msg[]> {
  return ((await oc.client.session.messages({ path: { id } })).data ?? []) as unknown as Msg[]
}
const textOf = (m: Msg) => m.parts.map((p) => (p.type === "text" ? (p.text ?? "") : "")).join("\n")

/** An NSO task by title, from the journal: its id, child session and the records of its life. */
function nsoTask(recs: Rec[], title: string) {
  const id = (recs.find((r) => r.e.type === "task.created" && (r.e.task as { title: string }).title === title)?.e.task as { id: string } | undefined)?.id
  if (!id) throw new Error(`bench: no NSO task "${title}" in the journal`)
  const update = (status: string) => recs.find((r) => r.e.type === "task.updated" && r.e.id === id && (r.e.patch as { status?: string }).status === status)
  const running = update("running")
  const buffered = recs.find((r) => r.e.type === "message.buffered" && (r.e.envelope as { taskId?: string }).taskId === id)
  const msgId = (buffered?.e.envelope as { id: string } | undefined)?.id
  const started = recs.find((r) => r.e.type === "delivery.started" && msgId && (r.e.ids as string[]).includes(msgId))
  const confirmed = recs.find((r) => r.e.type === "delivery.confirmed" && started && r.e.batchId === started.e.batchId)
  return { id, sessionId: (running?.e.patch as { sessionId?: string } | undefined)?.sessionId, running, completed: update("completed"), buffered, started, confirmed }
}

// ----- compare: one background delegation, child takes 2 s, parent idle -------------------------

const CHILD_MS = 2000

interface Delegation {
  /** The model's tool call streamed → the tool result in the next request. */
  call: number
  /** Child's model reply ended → the result's user message stored in the parent. */
  toParent: number
  /** Child's model reply ended → the parent's next model request. */
  toRequest: number
  /** Child's model reply ended → the child's prompt loop exited (OpenCode's log). */
  childExit: number
  /** Result stored in the parent → the parent's next model request. */
  storedToRequest: number
  /** The result's turn in the parent: loop start → model call (OpenCode's log). */
  resultTurn: number
  /** The user's `bg job` prompt's turn: loop start → model call (OpenCode's log). */
  userTurn: number
  /** NSO only: journal records on the way (ms after the child's model reply ended). */
  nso?: { completed: number; buffered: number; started: number; confirmed: number }
}

function delegationRules(kind: "opencode" | "nso"): Rule[] {
  const call =
    kind === "opencode"
      ? { name: "task", args: { description: "job $1", prompt: "bench job $1", subagent_type: "general", background: true } }
      : { name: "delegate", args: { agent: "builder", prompt: "bench job $1", title: "job $1" } }
  return [
    { when: { userMatch: "^bg job (\\d+)" }, reply: { toolCalls: [call] } },
    { when: { toolResult: kind === "opencode" ? "Background task started" : "Started task" }, reply: { text: "ok" } },
    { when: { userMatch: "^bench job (\\d+)" }, reply: { text: "bench result $1", delayMs: CHILD_MS } },
    { when: { user: "bench result" }, reply: { text: "noted" } },
  ]
}

async function delegateOnce(kind: "opencode" | "nso", { oc, model }: Side, session: string, i: number): Promise<Delegation> {
  model.requests.length = 0
  await oc.client.session.prompt({ path: { id: session }, body: { ...(kind === "nso" ? { agent: "oracle" } : {}), parts: [{ type: "text", text: `bg job ${i}` }] } })
  const d0 = await model.waitFor((r) => r.lastUser === `bg job ${i}` && !r.lastToolResult, 5_000)
  const d1 = await model.waitFor((r) => r.lastToolResult !== undefined && r.lastUser === `bg job ${i}`, 5_000)
  const child = await model.waitFor((r) => r.lastUser === `bench job ${i}`, 10_000)
  await until(() => child.respondedAt, `child ${i}'s reply to end`, CHILD_MS + 10_000)
  const next = await model.waitFor((r) => r.lastUser.includes(`bench result ${i}`) && !r.lastUser.startsWith("bench job"), 15_000)
  await allIdle(oc, `after delegation ${i}`)
  const msgs = await messages(oc, session)
  const stored = msgs.find((m) => m.info.role === "user" && textOf(m).includes(`bench result ${i}`))
  const asked = msgs.find((m) => m.info.role === "user" && textOf(m) === `bg job ${i}`)
  if (!stored || !asked) throw new Error(`bench: prompt or result ${i} not found in the parent session`)
  const task = kind === "nso" ? nsoTask(journal(oc), `job ${i}`) : undefined
  const childSession = task ? task.sessionId : /<task id="(ses_\w+)"/.exec(d1.lastToolResult ?? "")?.[1]
  const exit = childSession ? loopExits(oc).get(childSession) : undefined
  const after = (r: Rec | undefined) => (r ? r.t - child.respondedAt : NaN)
  return {
    call: d1.at - d0.respondedAt,
    toParent: stored.info.time.created - child.respondedAt,
    toRequest: next.at - child.respondedAt,
    childExit: exit !== undefined ? exit - child.respondedAt : NaN,
    storedToRequest: next.at - stored.info.time.created,
    resultTurn: turnStartup(oc, session, stored.info.time.created),
    userTurn: turnStartup(oc, session, asked.info.time.created),
    ...(task ? { nso: { completed: after(task.completed), buffered: after(task.buffered), started: after(task.started), confirmed: after(task.confirmed) } } : {}),
  }
}

export async function compareBench(n = 6): Promise<Row[]> {
  const nsoOpts = { buffer: { pauseMs: 0 }, init: { sweepDelayMs: 50 }, journal: { fsync: process.env.NSO_BENCH_FSYNC !== "0" } }
  const [oc, nso] = await withSides([bare({ OPENCODE_EXPERIMENTAL_BACKGROUND_SUBAGENTS: "true" }), { nso: nsoOpts }], async ([ocSide, nsoSide]) => {
    ocSide!.model.script(delegationRules("opencode"))
    nsoSide!.model.script(delegationRules("nso"))
    const ocSession = (await ocSide!.oc.client.session.create({ body: { title: "bench opencode" } })).data!.id
    const nsoSession = (await nsoSide!.oc.client.session.create({ body: { title: "bench nso" } })).data!.id
    const a: Delegation[] = []
    const b: Delegation[] = []
    for (let i = 0; i < n; i++) {
      a.push(await delegateOnce("opencode", ocSide!, ocSession, i))
      b.push(await delegateOnce("nso", nsoSide!, nsoSession, i))
    }
    return [a, b] as const
  })
  const section = "compare (no snapshots)"
  const row = (figure: string, pick: (d: Delegation) => number, target = "≤ ×1.00"): Row => {
    const a = nso.map(pick)
    const b = oc.map(pick)
    return {
      section,
      figure,
      value: `NSO ${fmtMs(median(a))} / OpenCode ${fmtMs(median(b))} = ${ratio(median(a), median(b))}`,
      target,
      note: `p50 of ${n}; NSO ${spread(a)}, OpenCode ${spread(b)}`,
    }
  }
  const path = (figure: string, pick: (d: NonNullable<Delegation["nso"]>) => number): Row => {
    const xs = nso.map((d) => pick(d.nso!))
    return { section: `${section}: NSO's path`, figure, value: `p50 ${fmtMs(median(xs))}`, note: spread(xs) }
  }
  return [
    row("(a) delegation tool call (model → tool result)", (d) => d.call),
    row("(b) child done → result text in the parent session", (d) => d.toParent),
    row("(c) child done → parent's next model request", (d) => d.toRequest),
    row("child done → child's prompt loop exits (OpenCode's log)", (d) => d.childExit, "same"),
    row("result stored in the parent → its next model request", (d) => d.storedToRequest, "same"),
    row("  of which the result's turn: loop → model call (OpenCode's log)", (d) => d.resultTurn, "same"),
    row("the user's prompt's turn: loop → model call (both via the HTTP API)", (d) => d.userTurn, "same"),
    path("child done → task.updated(completed) appended", (d) => d.completed),
    path("child done → message.buffered appended", (d) => d.buffered),
    path("child done → delivery.started appended", (d) => d.started),
    path("child done → delivery.confirmed appended (promptAsync returned)", (d) => d.confirmed),
  ]
}

// ----- twenty: twenty trivial tasks, concurrency 3 ----------------------------------------------

const N = 20
const CONCURRENCY = 3

/** One task's life, in ms since epoch; NaN where a side has no such moment. */
interface Life {
  /** Its slot became free (NSO: the delegate call, or the completion record of the task it follows). */
  slot: number
  created: number
  /** NSO only: `task.updated(running)` appended (the context file is written). */
  launched: number
  prompted: number
  request: number
  responded: number
  exited: number
  /** The slot was given back (NSO: completion record appended; OpenCode: prompt call returned). */
  released: number
  buffered: number
  delivered: number
}

interface Twenty {
  /** NSO: the model's reply with the delegate calls → last completion delivered. OpenCode: first create → last prompt returned. */
  wall: number
  /** CPU the server used meanwhile (until every session was idle again), ms. */
  cpu: number
  lives: Life[]
  note: string
}

const childRule: Rule = { when: { userMatch: "^batch job (\\S+)" }, reply: { text: "batch result $1" } }

/** What OpenCode and the model saw of one child session. */
async function childLife({ oc, model }: Side, sessionId: string, prompt: string, exits: Map<string, number>) {
  const req = model.requests.find((r) => r.lastUser === prompt && !r.lastToolResult)
  if (!req) throw new Error(`bench: the model never saw "${prompt}"`)
  return {
    prompted: (await messages(oc, sessionId)).find((m) => m.info.role === "user")?.info.time.created ?? NaN,
    request: req.at,
    responded: req.respondedAt,
    exited: exits.get(sessionId) ?? NaN,
  }
}

async function nsoTwenty(side: Side, round: number): Promise<Twenty> {
  const { oc, model } = side
  const title = (i: number) => `r${round} job ${i}`
  const prompt = (i: number) => `batch job ${round}-${i}`
  model.script([
    { when: { user: `twenty jobs ${round}` }, reply: { toolCalls: Array.from({ length: N }, (_, i) => ({ name: "delegate", args: { agent: "builder", prompt: prompt(i), title: title(i) } })) }, times: 1 },
    { when: { toolResult: "Started task" }, reply: { text: "Twenty builders started." }, times: 1 },
  ])
  const root = (await oc.client.session.create({ body: { title: `twenty ${round}` } })).data!.id
  const cpu0 = cpuMs(oc)
  await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: `twenty jobs ${round}` }] } })
  const t0 = (await model.waitFor((r) => r.lastUser === `twenty jobs ${round}` && !r.lastToolResult)).respondedAt
  const tasks = await until(() => {
    const recs = journal(oc)
    const all = Array.from({ length: N }, (_, i) => nsoTask(recs, title(i)))
    return all.every((t) => t.confirmed) && all
  }, `${N} completions delivered into the Oracle's session`, 120_000)
  await allIdle(oc, "after twenty tasks")
  const cpu = cpuMs(oc) - cpu0
  const exits = loopExits(oc)
  const created = new Map(((await oc.client.session.children({ path: { id: root } })).data ?? []).map((s) => [s.id, s.time.created]))
  const lives: Life[] = []
  for (const [i, t] of tasks.entries()) {
    lives.push({
      slot: NaN,
      created: created.get(t.sessionId!) ?? NaN,
      launched: t.running!.t,
      ...(await childLife(side, t.sessionId!, prompt(i), exits)),
      released: t.completed!.t,
      buffered: t.buffered!.t,
      delivered: t.confirmed!.t,
    })
  }
  // p-queue gives a slot to the next task when a running one ends: the k-th start (k ≥ 3)
  // follows the (k−3)-th release; the first three start at the delegate calls.
  const releases = lives.map((l) => l.released).sort((a, b) => a - b)
  ;[...lives].sort((a, b) => a.created - b.created).forEach((l, k) => (l.slot = k < CONCURRENCY ? t0 : releases[k - CONCURRENCY]!))
  const batches = new Set(tasks.map((t) => t.started!.e.batchId)).size
  const turns = model.requests.filter((r) => r.lastUser.includes(`batch result ${round}-`) && !r.lastToolResult).length
  return { wall: Math.max(...lives.map((l) => l.delivered)) - t0, cpu, lives, note: `${batches} deliveries/${turns} turn(s)` }
}

async function opencodeTwenty(side: Side, round: number): Promise<Twenty> {
  const { oc } = side
  const prompt = (i: number) => `batch job ${round}-${i}`
  const root = (await oc.client.session.create({ body: { title: `twenty ${round}` } })).data!.id
  // Warm up as the Oracle's own turn does on NSO's side (the first model call loads the provider).
  await oc.client.session.prompt({ path: { id: root }, body: { parts: [{ type: "text", text: "warm up" }] } })
  const runs: { sessionId: string; i: number; slot: number; created: number; released: number }[] = []
  let next = 0
  const cpu0 = cpuMs(oc)
  const t0 = Date.now()
  const worker = async () => {
    while (next < N) {
      const i = next++
      const slot = Date.now()
      const s = (await oc.client.session.create({ body: { parentID: root, title: `job ${i}` } })).data!
      await oc.client.session.prompt({ path: { id: s.id }, body: { agent: "general", parts: [{ type: "text", text: prompt(i) }] } })
      runs.push({ sessionId: s.id, i, slot, created: s.time.created, released: Date.now() })
    }
  }
  await Promise.all(Array.from({ length: CONCURRENCY }, worker))
  const wall = Date.now() - t0
  await allIdle(oc, "after twenty child sessions")
  const cpu = cpuMs(oc) - cpu0
  const exits = loopExits(oc)
  const lives: Life[] = []
  for (const r of runs) lives.push({ slot: r.slot, created: r.created, released: r.released, launched: NaN, ...(await childLife(side, r.sessionId, prompt(r.i), exits)), buffered: NaN, delivered: NaN })
  return { wall, cpu, lives, note: "" }
}

/**
 * Twenty trivial tasks on both sides, `rounds` times, alternating. With `snapshot: true` both
 * servers snapshot the work tree at every step as OpenCode does by default (as in the e2e tests).
 */
export async function twentyBench(opts: { snapshot: boolean; rounds: number }): Promise<Row[]> {
  const ROUNDS = opts.rounds
  const nsoOpts = { buffer: { pauseMs: 0 }, init: { sweepDelayMs: 50 }, tasks: { concurrency: CONCURRENCY }, journal: { fsync: process.env.NSO_BENCH_FSYNC !== "0" } }
  const config = { snapshot: opts.snapshot }
  const runs = await withSides([{ nso: nsoOpts, config }, { ...bare(), config }], async ([nsoSide, ocSide]) => {
    nsoSide!.model.script([childRule, { when: { user: "batch result" }, reply: { text: "Noted." } }])
    ocSide!.model.script([childRule])
    const out: { nso: Twenty; oc: Twenty }[] = []
    for (let round = 0; round < ROUNDS; round++) out.push({ nso: await nsoTwenty(nsoSide!, round), oc: await opencodeTwenty(ocSide!, round) })
    return out
  })
  const nsoWalls = runs.map((r) => r.nso.wall)
  const ocWalls = runs.map((r) => r.oc.wall)
  const section = `twenty (${opts.snapshot ? "snapshots" : "no snapshots"})`
  const rows: Row[] = [
    { section, figure: `${N} trivial tasks, concurrency ${CONCURRENCY}: NSO delegate → last completion delivered`, value: `p50 ${fmtMs(median(nsoWalls))}`, note: `${ROUNDS} round(s): ${nsoWalls.map(fmtMs).join(", ")}; ${runs.map((r) => r.nso.note).join("; ")}` },
    { section, figure: `${N} child sessions, ${CONCURRENCY} in flight: OpenCode alone (SDK create + prompt)`, value: `p50 ${fmtMs(median(ocWalls))}`, note: `${ROUNDS} round(s): ${ocWalls.map(fmtMs).join(", ")}` },
    { section, figure: "NSO / OpenCode alone", value: ratio(median(nsoWalls), median(ocWalls)), target: "≤ ×1.20", note: `per round ${runs.map((r) => ratio(r.nso.wall, r.oc.wall)).join(", ")}` },
  ]
  const nsoCpu = median(runs.map((r) => r.nso.cpu)) / N
  const ocCpu = median(runs.map((r) => r.oc.cpu)) / N
  if (!Number.isNaN(nsoCpu))
    rows.push({
      section,
      figure: "server CPU per task (OpenCode's process, with NSO inside it)",
      value: `NSO ${fmtMs(nsoCpu)} · OpenCode ${fmtMs(ocCpu)} = ${ratio(nsoCpu, ocCpu)}`,
      note: `NSO adds ${fmtMs(nsoCpu - ocCpu)} per task, its delivery turn included; OpenCode alone's client runs in the bench process`,
    })
  const nsoLives = runs.flatMap((r) => r.nso.lives)
  const ocLives = runs.flatMap((r) => r.oc.lives)
  const stage = (figure: string, who: string, f: (l: Life) => number) => {
    const show = (ls: Life[]) => {
      const xs = ls.map(f).filter((x) => !Number.isNaN(x))
      return xs.length ? `${fmtMs(median(xs))} (${fmtMs(percentile(xs, 90))})` : "—"
    }
    rows.push({ section: `${section}: per task, p50 (p90)`, figure, value: `NSO ${show(nsoLives)} · OpenCode ${show(ocLives)}`, note: who })
  }
  stage("slot free → child session created", "NSO: slot handed over after the completion record is durable, then the create call; OpenCode: the create call", (l) => l.created - l.slot)
  stage("child session created → its prompt stored", "NSO: context file, journal fsync, promptAsync, chat.message awaits child init; OpenCode: the prompt call", (l) => l.prompted - l.created)
  stage("  of which created → task.updated(running) appended", "NSO: create call returns, context file written", (l) => l.launched - l.created)
  stage("prompt stored → first model request", "OpenCode's loop, with NSO's system hook", (l) => l.request - l.prompted)
  stage("model request → model done (scripted, instant)", "the model", (l) => l.responded - l.request)
  stage("model done → child's loop exits (idle)", "OpenCode", (l) => l.exited - l.responded)
  stage("loop exit → slot released", "NSO: idle event → confirm → completion appended; OpenCode: the prompt call returns", (l) => l.released - l.exited)
  stage("slot held in all (slot free → released)", "sum of the above", (l) => l.released - l.slot)
  stage("completion appended → in the Oracle's buffer", "NSO: completion fsync, post, message.buffered fsync", (l) => l.buffered - l.released)
  stage("in the buffer → delivered (delivery.confirmed)", "NSO: Oracle idle?, delivery.started fsync, promptAsync, confirmed", (l) => l.delivered - l.buffered)
  return rows
}

// ----- sync: a blocking delegation, the result in the tool call ----------------------------------

/**
 * NSO's synchronous fallback (`delegate` with `wait: true`) against OpenCode's own blocking
 * `task` tool, child model 500 ms: from the child's model reply ending to the parent's next
 * model request carrying the result (the tool call returning), and the whole round.
 */
export async function syncBench(n = 6): Promise<Row[]> {
  const childMs = 500
  const rules = (kind: "opencode" | "nso"): Rule[] => [
    {
      when: { userMatch: "^sync job (\\d+)" },
      reply: { toolCalls: [kind === "opencode" ? { name: "task", args: { description: "job $1", prompt: "blocking job $1", subagent_type: "general" } } : { name: "delegate", args: { agent: "builder", prompt: "blocking job $1", title: "job $1", wait: true } }] },
    },
    { when: { userMatch: "^blocking job (\\d+)" }, reply: { text: "blocking result $1", delayMs: childMs } },
    { when: { toolResult: "blocking result" }, reply: { text: "noted" } },
  ]
  const once = async (kind: "opencode" | "nso", { oc, model }: Side, session: string, i: number) => {
    model.requests.length = 0
    const t0 = Date.now()
    await oc.client.session.prompt({ path: { id: session }, body: { ...(kind === "nso" ? { agent: "oracle" } : {}), parts: [{ type: "text", text: `sync job ${i}` }] } })
    const child = await model.waitFor((r) => r.lastUser === `blocking job ${i}`, 10_000)
    const back = await model.waitFor((r) => (r.lastToolResult ?? "").includes(`blocking result ${i}`), 10_000)
    await until(() => back.respondedAt, `the parent's reply after job ${i}`)
    await allIdle(oc, `after sync job ${i}`)
    return { back: back.at - child.respondedAt, round: back.respondedAt - t0 - childMs }
  }
  const [oc, nso] = await withSides([bare(), { nso: { init: { sweepDelayMs: 50 }, journal: { fsync: process.env.NSO_BENCH_FSYNC !== "0" } } }], async ([ocSide, nsoSide]) => {
    ocSide!.model.script(rules("opencode"))
    nsoSide!.model.script(rules("nso"))
    const a = (await ocSide!.oc.client.session.create({ body: { title: "bench opencode" } })).data!.id
    const b = (await nsoSide!.oc.client.session.create({ body: { title: "bench nso" } })).data!.id
    const x: { back: number; round: number }[] = []
    const y: { back: number; round: number }[] = []
    for (let i = 0; i < n; i++) {
      x.push(await once("opencode", ocSide!, a, i))
      y.push(await once("nso", nsoSide!, b, i))
    }
    return [x, y] as const
  })
  const row = (figure: string, pick: (d: { back: number; round: number }) => number): Row => {
    const a = nso.map(pick)
    const b = oc.map(pick)
    return { section: "sync (no snapshots)", figure, value: `NSO ${fmtMs(median(a))} / OpenCode ${fmtMs(median(b))} = ${ratio(median(a), median(b))}`, target: "≤ ×1.00", note: `p50 of ${n}; NSO ${spread(a)}, OpenCode ${spread(b)}` }
  }
  return [
    row("child done → result back in the parent's tool call (its next model request)", (d) => d.back),
    row(`whole round, less the child's ${childMs} ms model`, (d) => d.round),
  ]
}
