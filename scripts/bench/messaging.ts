import { join } from "node:path"
import { LoopGuard, type GuardInput } from "../../plugin/messaging/guard.js"
import { MessagingOptions } from "../../plugin/options.js"
import { MockModel, type Rule } from "../harness/mock-model.js"
import { readJsonl, startOpencode, type RunningOpencode } from "../harness/opencode.js"
import { bestOf, fmtMs, fmtRate, percentile, type Row, type Rec, sleep, until } from "./util.js"

/**
 * The messaging benchmark (issue "Agents talk to each other").
 *
 * (a) In memory: 100k agent messages through `LoopGuard.check`, the check every agent message
 *     passes before it is delivered, with NSO's default limits. A realistic mix: 1,000 workflows
 *     of 4 agents (12 ordered pairs each), distinct texts, hops 0–3, one message every 2 ms of
 *     (injected) time, 5 % acknowledgements ("ok", "thanks!") and 5 % repeats of the sender's
 *     previous text to the same recipient. Target ≥ 500 k/s.
 *
 * (b) On a real OpenCode server with NSO and a scripted model: "agent message → appears in an
 *     idle recipient's session". The recipient must be a live task whose session is idle: the
 *     coordinator of a coordinator-worker team, waiting for its one member (its turn ended, its
 *     task lives until the member ends). The member sends it `MESSAGES` findings with
 *     `send_message` (to: coordinator), one every `GAP_MS` of model time so the coordinator's
 *     turn on each (reply "noted") is over before the next. Latency runs from the `send_message`
 *     call's start (tool.execute.before, from log.jsonl: its end time minus its duration) to the
 *     `delivery.confirmed` record of the batch carrying that message id (OpenCode has stored it
 *     in the coordinator's session); the coordinator's next model request is shown beside it.
 *     Target p50 ≤ 50 ms. The first `WARMUP` messages are not counted.
 */

// ----- (a) the loop guard in memory ------------------------------------------------------------

const N = 100_000
const WORKFLOWS = 1_000
const AGENTS = 4

function guardInputs(): GuardInput[] {
  const out: GuardInput[] = []
  const last = new Map<string, string>()
  for (let i = 0; i < N; i++) {
    // Spread over workflows and pairs the way parallel runs interleave.
    const w = (i * 7919) % WORKFLOWS
    const from = (i * 31) % AGENTS
    const to = (from + 1 + ((i * 17) % (AGENTS - 1))) % AGENTS
    const pair = `${w}:${from}:${to}`
    const roll = (i * 2654435761) % 100
    let text: string
    if (roll < 5) text = ["ok", "Thanks!", "got it", "noted.", "👍"][i % 5]!
    else if (roll < 10 && last.has(pair)) text = last.get(pair)!
    else text = `finding ${i}: table t${i % 97} has ${i % 13} unused indexes; see src/db/schema_${i % 41}.sql`
    last.set(pair, text)
    out.push({ workflow: `wf_${w.toString(36).padStart(6, "0")}`, from: `tsk_${w}_${from}`, to: `tsk_${w}_${to}`, text, hops: i % 4 })
  }
  return out
}

export async function guardBench(): Promise<Row[]> {
  const inputs = guardInputs()
  const opts = MessagingOptions.parse({})
  let verdicts: Record<string, number> = {}
  const ms = await bestOf(5, () => {
    let now = 1_700_000_000_000
    const g = new LoopGuard(opts, () => now)
    const seen: Record<string, number> = { ok: 0 }
    for (const m of inputs) {
      now += 2
      const v = g.check(m)
      if (v.ok) seen.ok!++
      else seen[v.reason] = (seen[v.reason] ?? 0) + 1
    }
    verdicts = seen
  })
  const mix = Object.entries(verdicts)
    .map(([k, v]) => `${k} ${((v / N) * 100).toFixed(1)} %`)
    .join(", ")
  return [
    {
      section: "messaging",
      figure: "LoopGuard.check, 100k messages (1,000 workflows × 12 pairs, distinct texts, acks and repeats)",
      value: fmtRate(N / (ms / 1000)),
      target: "≥ 500 k/s",
      note: `${fmtMs(ms / N)} per message; default limits (pair ${opts.pairLimit}/${opts.pairWindowMs / 1000} s, budget ${opts.workflowBudget}/workflow); verdicts: ${mix}`,
    },
  ]
}

// ----- (b) on a real server --------------------------------------------------------------------

const WARMUP = 2
const MESSAGES = 20
const GAP_MS = 300
const pad = (k: number) => String(k).padStart(2, "0")
/** `snapshot: false` turns OpenCode's per-step snapshots off; `label` names the variant in the rows. */
export async function liveMessagingBench(opts: { snapshot?: boolean; label?: string } = {}): Promise<Row[]> {
  const section = opts.label ? `messaging, ${opts.label}` : "messaging"
  const total = WARMUP + MESSAGES
  const model = new MockModel()
  let oc: RunningOpencode | undefined
  try {
    await model.start()
    oc = await startOpencode({
      modelUrl: model.url,
      config: opts.snapshot === false ? { snapshot: false } : {},
      nso: {
        // The default pair limit (12 a minute) is for agents that loop; this bench sends more on purpose.
        messaging: { pairLimit: 1_000 },
        agents: {
          lead: { description: "Coordinates the relay bench", prompt: "You lead the relay bench.", role: "coordinator", delegates: true },
          sender: { description: "Sends the relay bench's findings", prompt: "You send findings." },
        },
        teams: { relay: { description: "A lead and one member who messages it", pattern: "coordinator_worker", coordinator: "lead", members: [{ agent: "sender" }] } },
      },
    })
    const send = (k: number): Rule["reply"] => ({ toolCalls: [{ name: "send_message", args: { to: "coordinator", text: `relay message ${pad(k)}`, kind: "finding" } }], delayMs: GAP_MS })
    model.script([
      // The Oracle starts the team.
      { when: { userMatch: "^relay run$" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "relay", prompt: "relay goal", title: "relay bench" } }] } },
      { when: { toolResult: "Started team run" }, reply: { text: "The team is on it." } },
      // The coordinator hands the work to its member, then its turn ends: idle, its task alive.
      { when: { user: "You coordinate this team. Goal: relay goal" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "sender", prompt: "relay send now", title: "relay sender" } }] } },
      { when: { toolResult: "Started task" }, reply: { text: "Assigned." } },
      // The member sends its findings one after another, GAP_MS of model time apart.
      { when: { user: "relay send now" }, reply: send(1), times: 1 },
      ...Array.from({ length: total - 1 }, (_, i): Rule => ({ when: { toolResult: "Message msg_" }, reply: send(i + 2), times: 1 })),
      { when: { toolResult: "Message msg_" }, reply: { text: "sender done" } },
      // The coordinator's turn on each message, and on the member's result.
      { when: { user: "relay message" }, reply: { text: "noted" } },
      { when: { user: "sender done" }, reply: { text: "RELAY DONE" } },
    ])

    const root = (await oc.client.session.create({ body: { title: "messaging bench" } })).data!.id
    await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "relay run" }] } })
    const stateDir = join(oc.projectDir, ".opencode/nso")
    const journal = () => readJsonl(join(stateDir, "journal.jsonl")) as Rec[]
    await until(() => {
      const recs = journal()
      const confirmed = new Set(recs.filter((r) => r.e.type === "delivery.confirmed").map((r) => r.e.batchId))
      const started = recs.filter((r) => r.e.type === "delivery.started" && confirmed.has(r.e.batchId))
      const audit = readJsonl(join(stateDir, "messages.jsonl")) as Record<string, unknown>[]
      const ids = audit.filter((l) => l.type === "message").map((l) => l.id as string)
      return ids.length >= total && ids.every((id) => started.some((r) => (r.e.ids as string[]).includes(id)))
    }, `${total} messages delivered`).catch((err: Error) => {
      const seen = model.requests.filter((r) => !r.isTitle).map((r) => `  ${r.lastToolResult !== undefined ? `tool result: ${r.lastToolResult.slice(0, 160)}` : `user: ${r.lastUser.slice(0, 120)}`} → ${JSON.stringify(r.reply).slice(0, 160)}`)
      throw new Error(`${err.message}. Model requests:\n${seen.join("\n")}\nServer log tail:\n${oc!.logs().slice(-2000)}`)
    })
    // Let the member finish and the coordinator end, so the tool log is written out.
    await model.waitFor((r) => r.lastUser.includes("sender done"), 30_000).catch(() => undefined)
    await sleep(300)

    const recs = journal()
    const audit = (readJsonl(join(stateDir, "messages.jsonl")) as Record<string, unknown>[]).filter((l) => l.type === "message")
    const toolLog = (readJsonl(join(stateDir, "log.jsonl")) as { time: string; tool: string; durationMs?: number; args: { text?: string } }[]).filter((l) => l.tool === "send_message")
    const rows: { call: number; modelDone: number; buffered: number; started: number; confirmed: number; nextReq: number; prevTurnEnd: number }[] = []
    for (let k = 1; k <= total; k++) {
      const text = `relay message ${pad(k)}`
      const line = audit.find((l) => l.text === text)
      const call = toolLog.find((l) => l.args.text === text)
      if (!line || !call) throw new Error(`bench messaging: message ${k} has ${line ? "an" : "no"} audit line and ${call ? "a" : "no"} tool log line`)
      if (line.outcome !== "queued") throw new Error(`bench messaging: message ${k} was ${String(line.outcome)}`)
      const id = line.id as string
      const buffered = recs.find((r) => r.e.type === "message.buffered" && (r.e.envelope as { id: string }).id === id)
      const started = recs.find((r) => r.e.type === "delivery.started" && (r.e.ids as string[]).includes(id))
      const confirmed = started && recs.find((r) => r.e.type === "delivery.confirmed" && r.e.batchId === started.e.batchId)
      if (!buffered || !started || !confirmed) throw new Error(`bench messaging: message ${k} (${id}) was not delivered`)
      const senderReq = model.requests.find((r) => r.reply.toolCalls?.some((c) => c.args.text === text))
      const leadReq = model.requests.find((r) => !r.lastToolResult && r.lastUser.endsWith(text))
      const prevLead = k > 1 ? model.requests.find((r) => !r.lastToolResult && r.lastUser.endsWith(`relay message ${pad(k - 1)}`)) : undefined
      rows.push({
        call: Date.parse(call.time) - (call.durationMs ?? 0),
        modelDone: senderReq?.respondedAt ?? NaN,
        buffered: buffered.t,
        started: started.t,
        confirmed: confirmed.t,
        nextReq: leadReq?.at ?? NaN,
        prevTurnEnd: prevLead?.respondedAt ?? 0,
      })
    }
    const measured = rows.slice(WARMUP)
    const p50 = (f: (r: (typeof rows)[number]) => number) => fmtMs(percentile(measured.map(f), 50))
    const lat = measured.map((r) => r.confirmed - r.call)
    // The coordinator's turn on the previous message was over before this one was sent.
    const idle = measured.filter((r) => r.prevTurnEnd < r.call).length
    return [
      {
        section,
        figure: `agent message → stored in an idle recipient's session (send_message start → delivery.confirmed), ${MESSAGES} messages`,
        value: `p50 ${fmtMs(percentile(lat, 50))}`,
        target: "≤ 50 ms",
        note: `p90 ${fmtMs(percentile(lat, 90))}, ${fmtMs(Math.min(...lat))}–${fmtMs(Math.max(...lat))}; a coordinator waiting for its member, idle at ${idle} of ${MESSAGES} sends; after ${WARMUP} warm-up messages`,
      },
      {
        section,
        figure: "  phases (p50)",
        value: "",
        note:
          `model reply ended → send_message starts ${p50((r) => r.call - r.modelDone)} (OpenCode); → message.buffered ${p50((r) => r.buffered - r.call)}; → delivery.started ${p50((r) => r.started - r.buffered)}; ` +
          `→ delivery.confirmed ${p50((r) => r.confirmed - r.started)} (OpenCode stores it); → the recipient's model request ${p50((r) => r.nextReq - r.confirmed)}`,
      },
    ]
  } finally {
    await oc?.dispose()
    await model.stop()
  }
}

export async function messagingBench(): Promise<Row[]> {
  // With OpenCode's defaults, then without snapshots as the other live rows run.
  return [...(await guardBench()), ...(await liveMessagingBench()), ...(await liveMessagingBench({ snapshot: false, label: "no snapshots" }))]
}
