import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { readJsonl, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, ownServers, transcript, until } from "./helpers.js"
import { LIMITS } from "./limits.js"

type Rec = { t: number; e: { type: string; [k: string]: unknown } }

describe("urgent questions", () => {
  it("an urgent question cuts in at the next idle moment; a normal one waits for the pause", async () => {
    const { model, start } = ownServers()
    // A long pause: a normal question must wait for it, an urgent one must not.
    const oc = await start({ nso: { buffer: { pauseMs: 60_000 }, init: { sweepDelayMs: 50 } } })
    model.script([
      {
        when: { user: "two jobs" },
        reply: {
          toolCalls: [
            { name: "delegate", args: { agent: "builder", prompt: "calm job", title: "calm" } },
            { name: "delegate", args: { agent: "builder", prompt: "hot job", title: "hot" } },
          ],
        },
        times: 1,
      },
      { when: { toolResult: "Started task" }, reply: { text: "Both started." }, times: 1 },
      { when: { user: "calm job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which colour?", timeout_ms: 120000 } }] }, times: 1 },
      { when: { user: "hot job" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Production is down, roll back?", urgency: "urgent", timeout_ms: 120000 } }] }, times: 1 },
      { when: { user: "roll back?" }, reply: { text: "Urgent: the builder asks whether to roll back production." }, times: 1 },
    ])
    // Toasts are bus events; collect them as the TUI would see them.
    const toasts: { at: number; message: string; variant: string }[] = []
    const events = await oc.client.event.subscribe()
    void (async () => {
      for await (const ev of events.stream as AsyncIterable<{ type: string; properties: { message: string; variant: string } }>)
        if (ev.type === "tui.toast.show") toasts.push({ at: Date.now(), ...ev.properties })
    })().catch(() => {})
    const root = (await oc.client.session.create({ body: { title: "urgent" } })).data!.id
    await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "two jobs" }] } })
    const urgent = await model.waitFor((r) => r.lastUser.includes("Production is down, roll back?") && !r.lastToolResult)
    // Toasted at once, as soon as it was asked.
    const toast = await until(() => toasts.find((t) => t.message.includes("Production is down, roll back?")), "the urgent toast")
    expect(toast.variant).toBe("warning")
    expect(urgent.lastUser).toMatch(/\[NSO · builder · task tsk_\w+ · question q_\w+ · URGENT\]/)
    // The normal question is still held: delivered nowhere yet.
    const text = (await transcript(oc.client, root)).map((m) => m.text).join("\n")
    expect(text).not.toContain("Which colour?")
    const recs = readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]
    const calm = recs.find((r) => r.e.type === "message.buffered" && (r.e.envelope as { text: string }).text.startsWith("Which colour?"))!
    const calmId = (calm.e.envelope as { id: string }).id
    expect(recs.some((r) => r.e.type === "delivery.started" && (r.e.ids as string[]).includes(calmId))).toBe(false)
  }, LIMITS.ownServersTestMs)
})

describe("SIGTERM", () => {
  it("writes the close summary of open sessions to progress.md and still lets the server exit", async () => {
    const { start } = ownServers()
    const oc = await start({ nso: { init: { sweepDelayMs: 50 } } })
    const root = (await oc.client.session.create({ body: { title: "before shutdown" } })).data!.id
    await oc.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "hello before shutdown" }] } })
    await oc.stop()
    // SIGTERM ended it, not the SIGKILL fallback.
    expect(oc.process.signalCode === "SIGKILL").toBe(false)
    const progress = readFileSync(join(oc.projectDir, ".opencode/context/01_memory/progress.md"), "utf8")
    expect(progress).toMatch(/## \(server stopped\) \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC — session "before shutdown"/)
    expect(progress).toContain("- Messages: 1 from the user")
  }, LIMITS.ownServersTestMs)
})

describe("kill -9 with a result still in the buffer", () => {
  it("delivers it after the restart, exactly once", async () => {
    const { model, start } = ownServers()
    // The user never pauses long enough before the crash: the result stays buffered.
    const first = await start({ nso: { buffer: { pauseMs: 600_000 }, init: { sweepDelayMs: 50 } } })
    let second: RunningOpencode | undefined
    model.script([
      { when: { user: "quick job please" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "the quick job", title: "quick" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "the quick job" }, reply: { text: "Quick job result: 42." }, times: 1 },
      { when: { user: "Quick job result: 42." }, reply: { text: "The answer is 42." } },
    ])
    const root = (await first.client.session.create({ body: { title: "buffered" } })).data!.id
    await first.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "quick job please" }] } })
    const journalPath = join(first.projectDir, ".opencode/nso/journal.jsonl")
    await until(() => (readJsonl(journalPath) as Rec[]).some((r) => r.e.type === "message.buffered" && (r.e.envelope as { text: string }).text.startsWith("Quick job result: 42.\n\n(1 turn · ")), "the result buffered")
    await first.kill()

    second = await start({ nso: { buffer: { pauseMs: 200 }, init: { sweepDelayMs: 50 } }, projectDir: first.projectDir, homeDir: first.homeDir })
    await second.client.session.list()
    await model.waitFor((r) => r.lastUser.includes("Quick job result: 42.") && r.lastUser.includes("· completion]"))
    await allIdle(second!.client, "idle")
    const msgs = await transcript(second.client, root)
    expect(msgs.filter((m) => m.text.includes("Quick job result: 42.") && m.nso)).toHaveLength(1)
  }, LIMITS.ownServersTestMs)
})

/**
 * Quitting the TUI with /exit disposes the OpenCode instance before the process ends: OpenCode
 * marks the reply in flight aborted. That must not read as the user cancelling the work, under
 * any close policy, even when the answer comes long after the restart (after sweeps ran).
 */
describe("quitting OpenCode (/exit) with a task running, then starting again", () => {
  async function quitWithRunningTask(policy: "ask" | "persist" | "kill", quit: "exit" | "kill -9") {
    const { model, start } = ownServers()
    // A fast reconciliation sweep, so a wrong reading of the aborted reply would show at once.
    const nso = { buffer: { pauseMs: 200 }, init: { sweepDelayMs: 50 }, tasks: { closePolicy: policy, reconcileMs: 300 } }
    const first = await start({ nso })
    model.script([
      { when: { user: "long job please" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "the long job", title: "long" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "the long job" }, reply: { text: "working…", delayMs: 60_000 }, times: 1 },
      { when: { user: "Your work on this task was interrupted" }, reply: { text: "Long job finished after all." }, times: 1 },
      { when: { user: "Long job finished after all." }, reply: { text: "The long job is done." } },
    ])
    const root = (await first.client.session.create({ body: { title: "quit" } })).data!.id
    await first.client.session.prompt({ path: { id: root }, body: { agent: "oracle", parts: [{ type: "text", text: "long job please" }] } })
    await model.waitFor((r) => r.lastUser.includes("the long job") && !r.lastToolResult, { what: "the builder's first model call" })
    if (quit === "exit") {
      // What /exit does: the instance is disposed (replies in flight are aborted), then the process ends.
      await first.client.instance.dispose()
      await first.stop()
    } else await first.kill()
    const second = await start({ nso, projectDir: first.projectDir, homeDir: first.homeDir })
    await second.client.session.list() // starts the project and NSO
    const journal = () => readJsonl(join(first.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]
    const taskId = (journal().find((r) => r.e.type === "task.created")!.e.task as { id: string }).id
    const statuses = () => journal().filter((r) => r.e.type === "task.updated" && r.e.id === taskId && (r.e.patch as { status?: string }).status).map((r) => (r.e.patch as { status: string }).status)
    return { model, second, root, journal, statuses }
  }

  /** The resumed task's result reaches the Oracle's session exactly once, tagged as the builder's; one task, completed once. */
  async function deliveredOnce(q: Awaited<ReturnType<typeof quitWithRunningTask>>): Promise<void> {
    await until(() => q.statuses().includes("completed"), "the task completed", { saw: () => q.statuses().join(" → ") })
    const delivered = async () => (await transcript(q.second.client, q.root)).filter((m) => m.nso && m.text.includes("Long job finished after all."))
    await until(async () => (await delivered()).length > 0, "the result in the Oracle's session")
    await allIdle(q.second.client)
    const results = await delivered()
    expect(results).toHaveLength(1)
    expect(results[0]!.nso).toMatchObject({ source: "agent", from: "builder", kind: "completion" })
    expect(q.statuses().filter((s) => s === "completed")).toHaveLength(1)
    expect(q.statuses()).not.toContain("cancelled")
    expect(q.journal().filter((r) => r.e.type === "task.created")).toHaveLength(1)
  }

  it.each(["exit", "kill -9"] as const)("ask (%s): the question waits through several sweeps, a late 'no problem, resume' resumes it, and the result is delivered once", async (quit) => {
    const q = await quitWithRunningTask("ask", quit)
    const asked = await q.model.waitFor((r) => r.lastUser.includes("was interrupted when OpenCode stopped or restarted"), { what: "the Oracle asked resume or cancel" })
    expect(asked.lastUser).toMatch(/\[NSO · nso · task tsk_\w+ · question q_\w+\]/)
    expect(asked.lastUser).toContain("Options: resume | cancel")
    const qid = /question (q_\w+)\]/.exec(asked.lastUser)![1]!
    // Several sweeps later the task is still on hold, not cancelled.
    const sweepsLater = Date.now() + 2_000
    await until(() => Date.now() > sweepsLater, "two seconds of reconciliation sweeps")
    expect(q.statuses()).not.toContain("cancelled")
    expect(q.statuses().at(-1)).toBe("stalled")
    await q.second.client.session.command({ path: { id: q.root }, body: { command: "answer", arguments: `${qid} no problem, resume` } })
    await q.model.waitFor((r) => r.lastUser.includes("Your work on this task was interrupted"), { what: "the builder told to continue" })
    await deliveredOnce(q)
  }, LIMITS.ownServersTestMs)

  it.each(["exit", "kill -9"] as const)("persist (%s): the task resumes by itself and its result is delivered once", async (quit) => {
    const q = await quitWithRunningTask("persist", quit)
    await q.model.waitFor((r) => r.lastUser.includes("Your work on this task was interrupted"), { what: "the builder told to continue" })
    await deliveredOnce(q)
  }, LIMITS.ownServersTestMs)

  it.each(["exit", "kill -9"] as const)("kill (%s): the task is cancelled after the restart and the Oracle is told why", async (quit) => {
    const { model, second, root, statuses } = await quitWithRunningTask("kill", quit)
    // A status, not a question: stored in the Oracle's session without a model turn, and toasted.
    const told = await until(
      async () => (await transcript(second.client, root)).find((m) => m.nso && m.text.includes("was cancelled: interrupted by a restart (close policy: kill)")),
      "the cancellation in the Oracle's session",
    )
    expect(told.text).toMatch(/\[NSO · nso · task tsk_\w+ · status\]/)
    expect(statuses().filter((s) => s === "cancelled")).toHaveLength(1)
    expect(model.requests.some((r) => r.lastUser.includes("Your work on this task was interrupted"))).toBe(false)
  }, LIMITS.ownServersTestMs)
})
