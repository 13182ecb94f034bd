import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, busySessions, journal, liveServer, newSession, prompt, taskNow, transcript, until } from "./helpers.js"

const run = promisify(execFile)
const taskStatus = (oc: RunningOpencode, id: string) => taskNow(oc, id).status


describe("tasks on a real server", () => {
  const srv = liveServer({
      nso: {
        buffer: { pauseMs: 300 },
        init: { sweepDelayMs: 50 },
        tasks: { concurrency: 10 },
        agents: { lead: { description: "Leads a piece of work and delegates parts of it", prompt: "You lead; delegate parts to the builder.", delegates: true } },
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

  it("three builders run in parallel and each result arrives", async () => {
    model.script([
      {
        when: { user: "three jobs" },
        reply: { toolCalls: ["A", "B", "C"].map((j) => ({ name: "delegate", args: { agent: "builder", prompt: `parallel job ${j}`, title: `job ${j}` } })) },
        times: 1,
      },
      { when: { toolResult: "Started task" }, reply: { text: "Three builders started." }, times: 1 },
      // Each builder's answer waits until all three asked: overlap is proven, however slow the machine.
      { when: { userMatch: "^parallel job (\\w)" }, reply: { text: "finished job $1", delayMs: 200, gate: 3 } },
    ])
    const root = await newSession(oc, "parallel")
    await prompt(oc, root, "three jobs please")
    // Results before the last are stored without a model turn; the last one asks for a reply.
    await until(async () => {
      const text = (await transcript(oc.client, root)).map((m) => m.text).join("\n")
      return ["A", "B", "C"].every((j) => text.includes(`finished job ${j}`))
    }, "all three results in the Oracle's session")
    const jobs = model.requests.filter((r) => /^parallel job \w/.test(r.lastUser) && !r.lastToolResult)
    expect(jobs).toHaveLength(3)
    // Parallel: every builder's request arrived before any builder's answer ended.
    expect(Math.max(...jobs.map((r) => r.at))).toBeLessThan(Math.min(...jobs.map((r) => r.respondedAt)))
  })

  it("a question raised while the user is active waits for the pause", async () => {
    model.script([
      { when: { user: "start the slow one" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "asking job", title: "asks" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "asking job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Tabs or spaces?", timeout_ms: 60000 } }] }, times: 1 },
      { when: { user: "tell me a long story" }, reply: { text: "Once upon a time…", delayMs: 1500 }, times: 1 },
      { when: { userMatch: "question (q_\\w+)\\]" }, reply: { toolCalls: [{ name: "answer", args: { question_id: "$1", answer: "spaces" } }] }, times: 1 },
      { when: { toolResult: "recorded: passed to the waiting agent" }, reply: { text: "Told the builder: spaces." }, times: 1 },
      { when: { toolResult: "The user answered: spaces" }, reply: { text: "Using spaces. Done." }, times: 1 },
    ])
    const root = await newSession(oc, "pause")
    await prompt(oc, root, "start the slow one")
    await model.waitFor((r) => r.lastToolResult === undefined && r.lastUser.includes("asking job") && r.tools.includes("ask_user"))
    const story = prompt(oc, root, "tell me a long story")
    await model.waitFor((r) => r.lastUser.includes("tell me a long story"))
    const asked = await until(() => journal(oc).find((r) => r.e.type === "question.asked"), "the question to be journaled")
    await story
    const chat = model.requests.find((r) => r.lastUser.includes("tell me a long story"))!
    const delivered = await model.waitFor((r) => /question q_\w+\]/.test(r.lastUser) && r.lastUser.includes("Tabs or spaces?") && !r.lastToolResult)
    // Asked while the Oracle was answering the user; put in front of the Oracle only afterwards.
    expect(asked.t).toBeLessThan(chat.respondedAt)
    expect(delivered.at).toBeGreaterThan(chat.respondedAt)
    await model.waitFor((r) => r.lastToolResult?.includes("The user answered: spaces") ?? false)
  })

  it("nested cancel stops the lead and the builder it started, and leaves nothing busy", async () => {
    model.script([
      { when: { user: "lead the migration" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "lead", prompt: "lead: run the migration", title: "migration" } }] }, times: 1 },
      { when: { toolResult: "Started task", hasTool: "ask_user" }, reply: { text: "Sub-task running; supervising.", delayMs: 30_000 }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "The lead is on it." }, times: 1 },
      { when: { user: "lead: run the migration" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "sub: migrate table users", title: "users" } }] }, times: 1 },
      { when: { user: "sub: migrate table users" }, reply: { text: "migrating…", delayMs: 30_000 }, times: 1 },
      { when: { user: "cancel the lead", anyMatch: "Started task (tsk_\\w+) \\(lead" }, reply: { toolCalls: [{ name: "tasks", args: { id: "$1", cancel: true } }] }, times: 1 },
      { when: { toolResult: "Cancelled" }, reply: { text: "Cancelled." }, times: 1 },
    ])
    const root = await newSession(oc, "nested")
    await prompt(oc, root, "lead the migration")
    await model.waitFor((r) => r.lastUser.includes("sub: migrate table users") && !r.lastToolResult)
    await until(async () => (await busySessions(oc.client)).length === 2, "lead and builder busy")
    await prompt(oc, root, "cancel the lead")
    const cancelResult = model.requests.find((r) => r.lastToolResult?.includes("Cancelled"))!
    expect(cancelResult.lastToolResult).toMatch(/Cancelled tsk_\w+ \(builder\), tsk_\w+ \(lead\)/)
    await allIdle(oc.client, "nothing busy after cancel")
    const ids = [...cancelResult.lastToolResult!.matchAll(/tsk_\w+/g)].map((m) => m[0])
    for (const id of ids) expect(taskStatus(oc, id)).toBe("cancelled")
  })

  it("twenty tasks finishing while the Oracle is mid-reply are each delivered exactly once", async () => {
    model.script([
      { when: { user: "twenty jobs" }, reply: { toolCalls: Array.from({ length: 20 }, (_, i) => ({ name: "delegate", args: { agent: "builder", prompt: `batch job ${i}`, title: `job ${i}` } })) }, times: 1 },
      // The Oracle is still replying while the builders finish.
      { when: { toolResult: "Started task" }, reply: { text: "Twenty builders started.", delayMs: 2500 }, times: 1 },
      { when: { userMatch: "^batch job (\\d+)" }, reply: { text: "batch result $1" } },
      { when: { user: "batch result" }, reply: { text: "Noted the results." } },
    ])
    const root = await newSession(oc, "twenty")
    await prompt(oc, root, "twenty jobs")
    const delivered = async () => ((await transcript(oc.client, root)).filter((m) => m.nso).map((m) => m.text).join("\n").match(/· completion\]/g) ?? []).length
    await until(async () => (await delivered()) >= 20, "twenty completions in the Oracle's session", { saw: async () => `${await delivered()}` })
    await allIdle(oc.client, "idle")
    const all = (await transcript(oc.client, root)).map((m) => m.text).join("\n")
    for (let i = 0; i < 20; i++) expect(all.match(new RegExp(`batch result ${i}\\b`, "g")), `result ${i}`).toHaveLength(1)
    const taskIds = [...all.matchAll(/task (tsk_\w+) · completion\]/g)].map((m) => m[1])
    expect(new Set(taskIds).size).toBe(20)
    expect(taskIds).toHaveLength(20)
  })

  it("a write outside the task's scope is refused; inside it goes through", async () => {
    model.script([
      { when: { user: "scoped job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "write the notes", title: "notes", scope: ["src/**"] } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "write the notes" }, reply: { toolCalls: [{ name: "write", args: { filePath: "outside.md", content: "nope" } }] }, times: 1 },
      { when: { toolResult: "NSO refused" }, reply: { toolCalls: [{ name: "write", args: { filePath: "src/inside.md", content: "yes" } }] }, times: 1 },
      { when: { toolResult: "rote" }, reply: { text: "Wrote src/inside.md." }, times: 1 },
    ])
    const root = await newSession(oc, "scope")
    await prompt(oc, root, "scoped job")
    const refused = await model.waitFor((r) => r.lastToolResult?.includes("NSO refused") ?? false)
    expect(refused.lastToolResult).toContain('"outside.md" is outside your task\'s write scope (src/**)')
    await model.waitFor((r) => r.lastUser.includes("Wrote src/inside.md") || (r.lastToolResult !== undefined && !r.lastToolResult.includes("NSO refused") && r.tools.includes("ask_user")))
    await until(() => existsSync(join(oc.projectDir, "src/inside.md")), "the in-scope write")
    expect(existsSync(join(oc.projectDir, "outside.md"))).toBe(false)
  })

  it("nso answer from another process reaches the waiting agent", async () => {
    model.script([
      { when: { user: "cli job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "cli asking job", title: "cli" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "cli asking job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which port?", timeout_ms: 60000 } }] }, times: 1 },
      { when: { toolResult: "The user answered: 8080" }, reply: { text: "Using port 8080." }, times: 1 },
      { when: { user: "Which port?" }, reply: { text: "The builder asks which port." } },
    ])
    const root = await newSession(oc, "cli")
    await prompt(oc, root, "cli job")
    const asked = await until(() => journal(oc).find((r) => r.e.type === "question.asked" && (r.e.question as { text: string }).text === "Which port?"), "question")
    const qid = (asked.e.question as { id: string }).id
    const cli = join(REPO, "dist/scripts/nso.js")
    const listed = await run(process.execPath, [cli, "questions", "--dir", oc.projectDir, "--json"])
    expect(JSON.parse(listed.stdout).map((q: { id: string }) => q.id)).toContain(qid)
    await run(process.execPath, [cli, "answer", qid, "8080", "--dir", oc.projectDir])
    await model.waitFor((r) => r.lastToolResult?.includes("The user answered: 8080") ?? false)
  })

  it("/answer in the Oracle's session reaches the waiting agent, and the Oracle is told", async () => {
    model.script([
      { when: { user: "slash job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "slash asking job", title: "slash" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "slash asking job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which region?", timeout_ms: 60000 } }] }, times: 1 },
      { when: { toolResult: "The user answered: eu-west" }, reply: { text: "Deploying to eu-west." }, times: 1 },
      { when: { user: "answered question" }, reply: { text: "Noted, the builder has the region." }, times: 1 },
      { when: { user: "Which region?" }, reply: { text: "The builder asks which region." } },
    ])
    const root = await newSession(oc, "slash")
    await prompt(oc, root, "slash job")
    const asked = await until(() => journal(oc).find((r) => r.e.type === "question.asked" && (r.e.question as { text: string }).text === "Which region?"), "question")
    const qid = (asked.e.question as { id: string }).id
    // Typed as the TUI's markdown may render it: without the underscore.
    await oc.client.session.command({ path: { id: root }, body: { command: "answer", arguments: `${qid.replace("_", "")} eu-west` } })
    await model.waitFor((r) => r.lastToolResult?.includes("The user answered: eu-west") ?? false)
    const told = await model.waitFor((r) => r.lastUser.includes(`answered question ${qid}`))
    expect(told.lastUser).toContain("The answer was passed to the waiting agent")
  })

  it("a cancelled task's question is closed: /answer to it is refused in the transcript, without a model turn", async () => {
    model.script([
      { when: { user: "doomed job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "doomed asking job", title: "doomed" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "doomed asking job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which colour?", timeout_ms: 60000 } }] }, times: 1 },
      { when: { user: "Which colour?" }, reply: { text: "The builder asks which colour." } },
    ])
    const root = await newSession(oc, "doomed")
    await prompt(oc, root, "doomed job")
    const asked = await until(() => journal(oc).find((r) => r.e.type === "question.asked" && (r.e.question as { text: string }).text === "Which colour?"), "the question journaled")
    const qid = (asked.e.question as { id: string; taskId: string }).id
    const taskId = (asked.e.question as { taskId: string }).taskId
    await oc.client.session.command({ path: { id: root }, body: { command: "nso-cancel", arguments: taskId } })
    await until(() => journal(oc).find((r) => r.e.type === "question.closed" && r.e.id === qid), "the question closed")
    const before = model.requests.length
    const r = await oc.client.session.command({ path: { id: root }, body: { command: "answer", arguments: `${qid} red` } })
    expect(r.response.status).toBe(500) // the command is stopped: no model turn
    const refusal = await until(async () => (await transcript(oc.client, root)).find((m) => m.text.includes("/answer failed")), "the refusal in the transcript")
    expect(refusal.text).toContain(`Question ${qid} is closed: its task ${taskId} ended cancelled`)
    expect(refusal.nso).toMatchObject({ source: "system", from: "nso" })
    expect(model.requests.filter((x) => !x.isTitle).length - before).toBe(0)
    expect(journal(oc).some((r) => r.e.type === "question.answered" && r.e.id === qid)).toBe(false)
  })

  it("/nso-status shows the board of every session without a model turn", async () => {
    model.script([
      { when: { user: "board job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "board asking job", title: "board" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "board asking job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which size?", options: ["S", "M"], timeout_ms: 60000 } }] }, times: 1 },
      { when: { user: "Which size?" }, reply: { text: "The builder asks which size." } },
    ])
    const root = await newSession(oc, "board")
    await prompt(oc, root, "board job")
    const asked = await until(() => journal(oc).find((r) => r.e.type === "question.asked" && (r.e.question as { text: string }).text === "Which size?"), "the question journaled")
    const qid = (asked.e.question as { id: string }).id
    // Asked from another, new session: the question open elsewhere is on the board.
    const other = await newSession(oc, "elsewhere")
    const before = model.requests.filter((x) => !x.isTitle).length
    await oc.client.session.command({ path: { id: other }, body: { command: "nso-status", arguments: "" } })
    const board = await until(async () => (await transcript(oc.client, other)).find((m) => m.text.includes("Waiting for you")), "the board in the transcript")
    expect(board.text).toContain(`${qid} · builder`)
    expect(board.text).toContain("Which size? [S | M]")
    expect(board.text).toContain(`Session ${root}`)
    expect(model.requests.filter((x) => !x.isTitle).length - before).toBe(0)
    await oc.client.session.command({ path: { id: root }, body: { command: "nso-cancel", arguments: "all" } })
    await until(async () => (await transcript(oc.client, root)).some((m) => m.text.includes("Stopped all background work of this session: 1 task(s) — tsk_")), "the cancellation in the transcript")
  })

  it("nso cancel from another process stops the task and its session", async () => {
    model.script([
      { when: { user: "endless job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "endless work", title: "endless" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "endless work" }, reply: { text: "still working…", delayMs: 30_000 }, times: 1 },
    ])
    const root = await newSession(oc, "cli cancel")
    await prompt(oc, root, "endless job")
    await model.waitFor((r) => r.lastUser.includes("endless work") && !r.lastToolResult)
    const created = await until(() => journal(oc).find((r) => r.e.type === "task.created" && (r.e.task as { title: string }).title === "endless"), "task")
    const id = (created.e.task as { id: string }).id
    await until(async () => (await busySessions(oc.client)).length > 0, "the builder busy")
    await run(process.execPath, [join(REPO, "dist/scripts/nso.js"), "cancel", id, "--dir", oc.projectDir])
    await until(() => taskStatus(oc, id) === "cancelled", "the task cancelled")
    await allIdle(oc.client, "nothing busy")
  })
})
