#!/usr/bin/env node
/**
 * `npm run demo`: the whole NSO story on a real `opencode serve` with a scripted model on
 * 127.0.0.1. The user asks, the Oracle delegates, the user keeps talking, the Builder's question
 * waits for the user's pause, is answered, and the result arrives; then the shipped code-review
 * team reviews it (four reviewers at once, the review lead merges) and the Oracle gets one
 * verdict. Then a timeline of what each party saw: the user, the Oracle, each agent, and NSO.
 */
import { join } from "node:path"
import { MockModel, type RecordedRequest } from "./harness/mock-model.js"
import { readJsonl, startOpencode, type RunningOpencode } from "./harness/opencode.js"

type Rec = { t: number; e: { type: string; [k: string]: unknown } }
const t0 = Date.now()
const timeline: { at: number; who: string; what: string }[] = []
const note = (who: string, what: string, at = Date.now()) => timeline.push({ at: at - t0, who, what })
const short = (s: string, n = 90) => (s.length > n ? s.slice(0, n - 1) + "…" : s).replace(/\n/g, " ⏎ ")

const model = new MockModel()
// Generous: a demo on a busy machine is slow, not broken.
model.defaultWaitMs = () => 60_000
await model.start()
model.script([
  // The Oracle hands the work to the Builder and keeps the conversation going.
  { when: { user: "build the login page" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "Build the login page: form, validation, session handling.", title: "login page" } }] }, times: 1 },
  { when: { toolResult: "Started task" }, reply: { text: "I've asked the Builder to build the login page. Anything else meanwhile?" }, times: 1 },
  { when: { user: "test command" }, reply: { text: "Tests run with `npm test`; the e2e part starts a real server.", delayMs: 800 }, times: 1 },
  // The Builder needs a decision only the user can make.
  { when: { user: "Build the login page" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Where should sessions be stored?", options: ["Postgres", "Redis"] } }] }, times: 1 },
  // The question reaches the Oracle at the pause; it asks the user in its own words.
  { when: { userMatch: "question (q_\\w+)\\]" }, reply: { text: "The Builder asks: where should login sessions be stored — Postgres or Redis?" }, times: 1 },
  // The user answers; the Oracle passes it back with the id from the header.
  { when: { user: "Postgres", anyMatch: "question (q_\\w+)\\]" }, reply: { toolCalls: [{ name: "answer", args: { question_id: "$1", answer: "Postgres" } }] }, times: 1 },
  { when: { toolResult: "recorded: passed to the waiting agent" }, reply: { text: "Passed on: Postgres." }, times: 1 },
  { when: { toolResult: "The user answered: Postgres" }, reply: { text: "Login page built: form with validation, sessions stored in Postgres, 12 tests passing." }, times: 1 },
  { when: { user: "Login page built" }, reply: { text: "The Builder is done: the login page is built, sessions live in Postgres, 12 tests pass." }, times: 1 },
  // A team: the Oracle names it where an agent goes; NSO runs the reviewers at once.
  { when: { user: "code-review team" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "code-review", prompt: "Review the login page change: form, validation, session handling in Postgres." } }] }, times: 1 },
  { when: { toolResult: "Started team run" }, reply: { text: "The code-review team is on it: its reviewers work in parallel; you will get one verdict." }, times: 1 },
  { when: { user: "You synthesise this team's work" }, reply: { text: "Verdict: ship it. Must-fix: none. Should-fix: rate-limit the login form (security, performance agree).\nDisagreements: none", delayMs: 300 }, times: 1 },
  { when: { userMatch: "You are (review-[a-z-]+), the team's ([a-z -]+)\\." }, reply: { text: "$2: no blocking issue; suggest rate-limiting the login form.", delayMs: 600 } },
  { when: { user: "Verdict: ship it" }, reply: { text: "The review team says ship it; one suggestion: rate-limit the login form." }, times: 1 },
])

let oc: RunningOpencode | undefined
// Stopped from outside (Ctrl-C, a test's time limit): leave no server or temp folder behind.
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    void (oc?.dispose() ?? Promise.resolve()).finally(() => process.exit(130))
  })
try {
  oc = await startOpencode({
    modelUrl: model.url,
    nso: { buffer: { pauseMs: 1500 } },
    files: { ".opencode/context/00_meta/tech-stack.md": "# Tech stack\nTypeScript, Node 20, vitest.\n" },
  })
  note("demo", `scripted model on ${model.url}; opencode serve on ${oc.url}`)
  const client = oc.client
  const session = (await client.session.create({ body: { title: "NSO demo" } })).data!.id
  const say = async (text: string) => {
    note("user", text)
    await client.session.prompt({ path: { id: session }, body: { agent: "oracle", parts: [{ type: "text", text } ] } })
  }
  /** Waits until the Oracle's session is idle (the Builder may still be working). */
  const idle = async () => {
    for (let i = 0; i < 600; i++) {
      const r = await client.session.status()
      const st = (r.data ?? {})[session] as { type: string } | undefined
      if (!st || st.type === "idle") return
      await new Promise((r) => setTimeout(r, 50))
    }
  }

  await say("Please build the login page.")
  await say("Meanwhile, what is our test command?")
  // The user reads; the pause lets the Builder's question through.
  await model.waitFor((r) => /question q_\w+\]/.test(r.lastUser))
  await idle()
  await say("Postgres.")
  await model.waitFor((r) => r.lastUser.includes("Login page built"))
  await idle()
  await say("Now have the code-review team look at it.")
  await model.waitFor((r) => r.lastUser.includes("Verdict: ship it") && r.lastUser.includes("· completion]"))
  await idle()

  // What each party saw.
  const who = (r: RecordedRequest) => /You are the ([\w-]+) agent working on background task/.exec(r.system)?.[1] ?? "oracle"
  for (const r of model.requests.filter((r) => !r.isTitle)) {
    const saw = r.lastToolResult !== undefined ? `tool result: ${short(r.lastToolResult)}` : short(r.lastUser)
    note(who(r), `sees ${saw}`, r.at)
    const did = r.reply.toolCalls ? `calls ${r.reply.toolCalls.map((c) => `${c.name}(${short(JSON.stringify(c.args), 70)})`).join(", ")}` : `says: ${short(r.reply.text ?? "")}`
    note(who(r), did, r.respondedAt || r.at)
  }
  for (const r of readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]) {
    const e = r.e
    if (e.type === "task.created") note("nso", `task ${(e.task as { id: string }).id} created for ${(e.task as { agent: string }).agent}`, r.t)
    else if (e.type === "task.updated" && (e.patch as { status?: string }).status) note("nso", `task ${String(e.id)} → ${(e.patch as { status: string }).status}`, r.t)
    else if (e.type === "question.asked") note("nso", `question ${(e.question as { id: string }).id} from ${(e.question as { from: string }).from} journaled`, r.t)
    else if (e.type === "message.buffered") {
      const env = e.envelope as { kind: string; from: string; priority: string }
      note("nso", `buffered ${env.kind} from ${env.from} (${env.priority}) — held until the user pauses`, r.t)
    } else if (e.type === "delivery.started") note("nso", `user paused: delivering ${(e.ids as string[]).length} message(s) to the Oracle`, r.t)
    else if (e.type === "question.answered") note("nso", `question ${String(e.id)} answered by ${String(e.by)}: ${String(e.answer)}`, r.t)
    else if (e.type === "workflow.created") {
      const w = e.workflow as { id: string; team: string; pattern: string }
      note("nso", `team run ${w.id} created for ${w.team} (${w.pattern})`, r.t)
    } else if (e.type === "workflow.updated" && (e.patch as { phase?: string }).phase) note("nso", `team run ${String(e.id)} → ${(e.patch as { phase: string }).phase}`, r.t)
  }
  for (const m of readJsonl(join(oc.projectDir, ".opencode/nso/messages.jsonl")) as { time: string; sessionId: string; source: string; from: string }[])
    if (m.sessionId === session) note("nso", `tagged a message in the Oracle's session: source=${m.source} from=${m.from}`, Date.parse(m.time))
} catch (err) {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`)
  if (oc) console.error(oc.logs().slice(-2000))
  process.exitCode = 1
} finally {
  await oc?.dispose()
  await model.stop()
}

console.log("\nNSO demo — what each party saw (ms since start)\n")
for (const e of timeline.sort((a, b) => a.at - b.at)) console.log(`${String(e.at).padStart(6)}  ${e.who.padEnd(8)} ${e.what}`)
