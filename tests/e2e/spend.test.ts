import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { afterEach, beforeAll, describe, expect, it } from "vitest"
import { REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, busySessions, journal, liveServer, newSession, prompt, taskNow, transcript, until } from "./helpers.js"

const run = promisify(execFile)

/** Whether any message of a recorded request mentions the text. */
const mentions = (r: { messages: unknown[] }, text: string) => JSON.stringify(r.messages).includes(text)

const createdTasks = (oc: RunningOpencode) => journal(oc).filter((r) => r.e.type === "task.created").map((r) => r.e.task as { id: string; agent: string; title: string })

describe("token accounting, budgets, retries, sync mode and stopping everything, on a real server", () => {
  const srv = liveServer({
    nso: {
      buffer: { pauseMs: 300 },
      init: { sweepDelayMs: 50 },
      tasks: { concurrency: 10, retry: { attempts: 1, backoffMs: 300 } },
      agents: { lead: { description: "Leads a piece of work and delegates parts of it", prompt: "You lead; delegate parts to the builder.", delegates: true } },
      teams: { duo: { description: "Two builders in parallel", pattern: "parallel", members: [{ agent: "builder", role: "one" }, { agent: "builder", role: "two" }] } },
    },
  })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })
  afterEach(async () => {
    await allIdle(oc.client, "sessions idle before the next test")
  })

  it("rolls each task's tokens up to its parent and the session, exactly as the model reported them", async () => {
    model.script([
      { when: { user: "lead the build" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "lead", prompt: "lead: build the parser", title: "parser" } }] }, times: 1 },
      { when: { toolResult: "Started task", lacksTool: "ask_user" }, reply: { text: "The lead is on it." }, times: 1 },
      // The lead: delegates (100/20), says it waits (50/5), then reads the builder's result (70/9).
      { when: { user: "lead: build the parser" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "sub: write the tokenizer", title: "tokenizer" } }], usage: { input: 100, output: 20 } }, times: 1 },
      { when: { toolResult: "Started task", hasTool: "ask_user" }, reply: { text: "Waiting for the builder.", usage: { input: 50, output: 5 } }, times: 1 },
      { when: { user: "tokenizer written" }, reply: { text: "lead: parser done", usage: { input: 70, output: 9 } }, times: 1 },
      // The builder: one tool step (300/40), then its result (200/30).
      { when: { user: "sub: write the tokenizer" }, reply: { toolCalls: [{ name: "board", args: {} }], usage: { input: 300, output: 40 } }, times: 1 },
      { when: { hasTool: "ask_user", anyMatch: "sub: write the tokenizer" }, reply: { text: "tokenizer written", usage: { input: 200, output: 30 } }, times: 1 },
      { when: { user: "lead: parser done" }, reply: { text: "The parser is done." }, times: 1 },
      { when: { user: "how much", anyMatch: "Started task (tsk_\\w+) \\(lead" }, reply: { toolCalls: [{ name: "tasks", args: { id: "$1" } }] }, times: 1 },
      { when: { toolResult: "With the tasks it started" }, reply: { text: "Here is the bill." }, times: 1 },
    ])
    const root = await newSession(oc, "rollup")
    await prompt(oc, root, "lead the build")
    const completion = await until(async () => (await transcript(oc.client, root)).find((m) => m.nso?.kind === "completion" && m.text.includes("lead: parser done")), "the lead's completion in the Oracle's session")
    const lead = createdTasks(oc).find((t) => t.agent === "lead")!
    const builder = createdTasks(oc).find((t) => t.agent === "builder")!
    expect(taskNow(oc, builder.id).usage).toMatchObject({ input: 500, output: 70, turns: 2 })
    expect(taskNow(oc, lead.id).usage).toMatchObject({ input: 220, output: 34, turns: 3 })
    // One short line in the delivered completion: the lead's own turns.
    expect(completion.text).toContain("(3 turns · 254 tokens (220 in, 34 out))")
    await allIdle(oc.client, "idle after the completion")
    await prompt(oc, root, "how much did that cost?")
    const view = (await model.waitFor((r) => r.lastToolResult?.includes("With the tasks it started") ?? false, { what: "the tasks tool's view of the lead" })).lastToolResult!
    expect(view).toContain("Its own turns: 3 turns · 254 tokens (220 in, 34 out)")
    expect(view).toContain("With the tasks it started: 5 turns · 824 tokens (720 in, 104 out)")
    const { stdout } = await run(process.execPath, [join(REPO, "dist/scripts/nso.js"), "tasks", "--all", "--dir", oc.projectDir])
    expect(stdout).toContain(`${builder.id} · builder · completed`)
    expect(stdout).toMatch(/570 tok, 2 turns/)
    expect(stdout).toMatch(/All background work so far: 5 turns · 824 tokens/)
  })

  it("a token budget stops a task that keeps calling tools, with its partial result and the reason", async () => {
    model.script([
      { when: { user: "run the loop" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "loop: keep polishing", title: "polish", max_tokens: 300 } }] }, times: 1 },
      { when: { toolResult: "Started task", lacksTool: "ask_user" }, reply: { text: "Started the polisher." }, times: 1 },
      // 110 tokens per step, never done: the budget of 300 is reached at the third step.
      { when: { hasTool: "ask_user", anyMatch: "loop: keep polishing" }, reply: { text: "polished another corner", toolCalls: [{ name: "board", args: {} }], usage: { input: 100, output: 10 } } },
      { when: { user: "budget" }, reply: { text: "The polisher hit its budget." } },
    ])
    const root = await newSession(oc, "budget")
    await prompt(oc, root, "run the loop")
    const failure = await until(async () => (await transcript(oc.client, root)).find((m) => m.nso?.kind === "failure" && m.text.includes("polish")), "the polisher's failure in the Oracle's session")
    expect(failure.text).toMatch(/stopped: it used 330 tokens, at its budget of 300/)
    expect(failure.text).toContain("Partial result (what it had written so far):\npolished another corner")
    const t = createdTasks(oc).find((x) => x.title === "polish")!
    expect(taskNow(oc, t.id)).toMatchObject({ status: "failed", maxTokens: 300 })
    // Stopped means stopped: no step after the one that crossed the budget.
    await allIdle(oc.client, "the stopped task's session idle")
    const steps = model.requests.filter((r) => r.tools.includes("ask_user") && mentions(r, "loop: keep polishing")).length
    expect(steps).toBe(3)
  })

  it("a provider failure is retried once, visibly, and the task completes", async () => {
    model.script([
      { when: { user: "flaky job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "flaky: build it", title: "flaky" } }] }, times: 1 },
      { when: { toolResult: "Started task", lacksTool: "ask_user" }, reply: { text: "Started." }, times: 1 },
      // The provider is down for longer than OpenCode's own retries (503 each time, until NSO's retry).
      { when: { user: "Automatic retry 1 of 1" }, reply: { text: "built after the retry" }, times: 1 },
      { when: { user: "flaky: build it" }, reply: { fail: 503 } },
      { when: { user: "built after the retry" }, reply: { text: "Noted." }, times: 1 },
    ])
    const root = await newSession(oc, "retry")
    await prompt(oc, root, "flaky job")
    const done = await until(async () => (await transcript(oc.client, root)).find((m) => m.nso?.kind === "completion" && m.text.includes("built after the retry")), "the retried task's completion", {
      saw: () => `${model.requests.filter((r) => r.lastUser.includes("flaky: build it")).length} failed attempt(s), task ${JSON.stringify(createdTasks(oc).filter((t) => t.title === "flaky").map((t) => taskNow(oc, t.id).status))}`,
    })
    // OpenCode's own retries came first; NSO's came once they were spent.
    const failed = model.requests.filter((r) => r.lastUser.includes("flaky: build it") && !r.lastToolResult)
    expect(failed.length).toBeGreaterThan(1)
    const retried = model.requests.find((r) => r.lastUser.includes("Automatic retry 1 of 1"))!
    expect(retried.at).toBeGreaterThanOrEqual(Math.max(...failed.map((r) => r.respondedAt)))
    expect(done.text).toMatch(/1 automatic retry/)
    const t = createdTasks(oc).find((x) => x.title === "flaky")!
    const now = taskNow(oc, t.id)
    expect(now.status).toBe("completed")
    expect(now.retries).toHaveLength(1)
    expect((now.retries![0] as { reason: string }).reason).not.toBe("")
  })

  it("delegate with wait: true returns the result in the tool call, and it is not delivered again", async () => {
    model.script([
      { when: { user: "do it now" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "sync: compute the answer", title: "sync", wait: true } }] }, times: 1 },
      { when: { user: "sync: compute the answer" }, reply: { text: "the answer is 42", delayMs: 300 }, times: 1 },
      { when: { toolResult: "the answer is 42" }, reply: { text: "It is 42." }, times: 1 },
    ])
    const root = await newSession(oc, "sync")
    await prompt(oc, root, "do it now")
    const r = await model.waitFor((x) => x.lastToolResult?.includes("the answer is 42") ?? false, { what: "the delegate call's own result" })
    expect(r.lastToolResult).toMatch(/Task tsk_\w+ \(builder: "sync"\) completed\./)
    await allIdle(oc.client, "idle after the sync delegate")
    // A report is decided with the task's end and journaled in the same group commit: once the
    // end is on disk, a result that was going to be delivered is buffered already.
    const t = createdTasks(oc).find((x) => x.title === "sync")!
    await until(() => taskNow(oc, t.id).status === "completed", "the sync task's end journaled")
    const msgs = await transcript(oc.client, root)
    expect(msgs.filter((m) => m.nso?.kind === "completion")).toHaveLength(0)
    expect(journal(oc).filter((x) => x.e.type === "message.buffered")).not.toContainEqual(expect.objectContaining({ e: expect.objectContaining({ envelope: expect.objectContaining({ text: expect.stringContaining("the answer is 42") }) }) }))
  })

  it("stopping the Oracle's reply leaves background work running and the next turn is reminded of it", async () => {
    model.script([
      { when: { user: "start the long build" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "long: build everything", title: "long build" } }] }, times: 1 },
      { when: { toolResult: "Started task", lacksTool: "ask_user" }, reply: { text: "Started; tell me more." }, times: 1 },
      // The builder finishes only once the user has written again after the stop.
      { when: { user: "long: build everything" }, reply: { text: "everything built", after: { user: "what now" } }, times: 1 },
      { when: { user: "tell me a long story" }, reply: { text: "Once upon a time…", delayMs: 20_000 }, times: 1 },
      { when: { user: "what now" }, reply: { text: "The build still runs." }, times: 1 },
      { when: { user: "everything built" }, reply: { text: "Built." }, times: 1 },
    ])
    const root = await newSession(oc, "abort")
    await prompt(oc, root, "start the long build")
    const story = oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "tell me a long story" }] } })
    await model.waitFor((r) => r.lastUser.includes("tell me a long story"), { what: "the Oracle's long reply to begin" })
    await oc.client.session.abort({ path: { id: root } })
    await story.catch(() => {})
    const t = createdTasks(oc).find((x) => x.title === "long build")!
    await until(() => taskNow(oc, t.id).sessionId, "the builder's session")
    expect(taskNow(oc, t.id).status).toBe("running")
    expect(await busySessions(oc.client)).toContain(taskNow(oc, t.id).sessionId)
    await prompt(oc, root, "what now?")
    const next = model.requests.find((r) => r.lastUser.includes("what now"))!
    expect(next.system).toContain("the user stopped your previous reply; background work was not stopped and keeps running — 1 task(s)")
    expect(next.system).toContain(t.id)
    await until(async () => (await transcript(oc.client, root)).some((m) => m.nso?.kind === "completion" && m.text.includes("everything built")), "the build's result after the stop")
    // Once: the turn after that is not reminded again.
    const later = model.requests.filter((r) => r.lastUser.includes("everything built"))
    for (const r of later) expect(r.system).not.toContain("the user stopped your previous reply")
  })

  it("nso cancel --all and /nso-cancel-all stop every task and team run, leaving nothing busy", async () => {
    model.script([
      { when: { user: "start three things" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "slow: one", title: "one" } }, { name: "delegate", args: { agent: "lead", prompt: "lead: two", title: "two" } }, { name: "delegate", args: { agent: "duo", prompt: "team: three" } }] }, times: 1 },
      { when: { toolResult: "Started", lacksTool: "ask_user" }, reply: { text: "Three things running." }, times: 1 },
      { when: { user: "lead: two" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "slow: two-sub", title: "two-sub" } }] }, times: 1 },
      { when: { toolResult: "Started task", hasTool: "ask_user" }, reply: { text: "Supervising." }, times: 1 },
      { when: { user: "slow:" }, reply: { text: "working…", delayMs: 60_000 } },
      { when: { user: "team: three" }, reply: { text: "working…", delayMs: 60_000 } },
    ])
    const root = await newSession(oc, "cancel-all")
    await prompt(oc, root, "start three things")
    await until(async () => (await busySessions(oc.client)).length >= 4, "the builders and the team's members busy", { saw: async () => `${(await busySessions(oc.client)).length} busy` })
    const { stdout } = await run(process.execPath, [join(REPO, "dist/scripts/nso.js"), "cancel", "--all", "--session", root, "--dir", oc.projectDir])
    expect(stdout).toMatch(/Stopping all background work of session \w+ \(\d+ task\(s\) running\) recorded/)
    await allIdle(oc.client, "nothing busy after nso cancel --all")
    // A lead waiting for its builder is idle already: its end is journaled right after the builder's.
    const three = createdTasks(oc).filter((x) => ["one", "two", "two-sub"].includes(x.title))
    expect(three).toHaveLength(3)
    await until(() => three.every((t) => taskNow(oc, t.id).status === "cancelled"), "the builder, the lead and its builder cancelled", { saw: () => three.map((t) => `${t.title}: ${taskNow(oc, t.id).status}`).join(", ") })
    const run_ = journal(oc).find((r) => r.e.type === "workflow.created")!.e.workflow as { id: string }
    expect(journal(oc).filter((r) => r.e.type === "workflow.updated" && r.e.id === run_.id).map((r) => (r.e.patch as { phase?: string }).phase)).toContain("cancelled")

    // The slash command, for the work started after that.
    model.script([{ when: { user: "one more" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "slow: four", title: "four" } }] }, times: 1 }, { when: { toolResult: "Started task", lacksTool: "ask_user" }, reply: { text: "Running." }, times: 1 }])
    await prompt(oc, root, "one more")
    await until(async () => (await busySessions(oc.client)).length >= 1, "the fourth builder busy")
    await oc.client.session.command({ path: { id: root }, body: { command: "nso-cancel-all", arguments: "" } })
    const shown = await until(async () => (await transcript(oc.client, root)).find((m) => m.text.includes("Stopped all background work of this session")), "the /nso-cancel-all notice")
    expect(shown.text).toMatch(/1 task\(s\) — tsk_\w+ \(builder: four\)/)
    await allIdle(oc.client, "nothing busy after /nso-cancel-all")
  })
})
