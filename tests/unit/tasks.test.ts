import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { Options } from "../../plugin/options.js"
import { Runtime } from "../../plugin/runtime.js"
import { writeTargets } from "../../plugin/opencode/shapes.js"
import { refuseWrite } from "../../plugin/tasks/write-guard.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

let current: Runtime | undefined
/** Lets pending work settle, including real file I/O (task context files). No clock moves. */
const flush = async () => {
  for (let round = 0; round < 4; round++) {
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r))
    if (current) {
      await settled(() => current!.tasks.launching === 0, "launches")
      await current.journal.flush().catch(() => {})
    }
  }
}

/** Waits (bounded) until a condition holds; for I/O another part of NSO is doing. */
async function settled(cond: () => boolean, what = "condition"): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (cond()) return
    await new Promise((r) => setImmediate(r))
    if (i % 20 === 19) await new Promise((r) => setTimeout(r, 1))
  }
  throw new Error(`never settled: ${what}`)
}

async function setup(over: Record<string, unknown> = {}, dir = tempDir(), deps = fakeDeps()) {
  const opts = Options.parse({
    journal: { fsync: false },
    buffer: { pauseMs: 1000 },
    agents: { lead: { description: "leads", prompt: "You lead.", delegates: true } },
    ...over,
  })
  const rt = await Runtime.start(deps, dir, opts)
  current = rt
  // The Oracle is busy answering the user, so agent messages stay in the buffer to inspect.
  rt.registry.setBusy("ses_root", true)
  const host = deps.fakeHost
  /** The child session of the nth created task finishes with this text. */
  /** Waits until `n` child sessions have been prompted (their launch is complete). */
  const launched = (n: number) => settled(() => host.prompts.length >= n, `${n} launches`)
  const finish = async (sessionId: string, text: string) => {
    host.busy.delete(sessionId)
    host.outcomes.set(sessionId, { completed: true, text, createdAt: deps.time.now })
    await rt.tasks.onIdle(sessionId)
    await flush()
  }
  return { rt, deps, host, dir, finish, launched }
}

describe("tasks", () => {
  it("delegate returns at once, journaled, then starts the child with the prompt and context file", async () => {
    const { rt, host, dir, launched } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "Do X", title: "x", scope: ["src/**"] })
    expect(t.status).toBe("queued")
    expect(rt.state.tasks.get(t.id)).toBeDefined()
    await launched(1)
    expect(host.created).toEqual([{ id: "ses_child1", parentId: "ses_root", title: "builder: x" }])
    expect(host.prompts[0]).toMatchObject({ sessionId: "ses_child1", agent: "builder", text: "Do X" })
    expect(host.prompts[0]!.delegates).toBe(false)
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    const ctx = readFileSync(join(dir, ".opencode/nso/tasks", t.id, "context.md"), "utf8")
    expect(ctx).toContain("Write scope: src/**")
    expect(ctx).toContain("You are the builder agent working on background task " + t.id)
    await rt.dispose()
  })

  it("an unknown agent is refused with the list of agents", async () => {
    const { rt } = await setup()
    const err = await rt.tasks.delegate({ parentSessionId: "s", agent: "wizard", prompt: "x" }).catch((e: Error) => e)
    expect((err as Error).message).toMatch(/^Unknown agent "wizard"\. Agents you can delegate to: .*\bbuilder\b.*\blead\b/)
    expect((err as Error).message).toContain("profiler")
    expect((err as Error).message).not.toContain("oracle")
    await rt.dispose()
  })

  it("completion is confirmed against the child's last message and delivered to the parent", async () => {
    const { rt, deps, host, finish } = await setup()
    rt.sessionBusy("ses_root", false)
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "Do X" })
    await flush()
    // An idle before the child has answered is not a completion.
    await rt.tasks.onIdle("ses_child1")
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    await finish("ses_child1", "X is done")
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "completed", result: "X is done" })
    deps.time.advance(1000)
    await rt.deliverer.idle()
    expect(host.injections.map((i) => [i.text, i.noReply])).toEqual([[`[NSO · builder · task ${t.id} · completion]\nX is done`, false]])
    await rt.dispose()
  })

  it("bounds concurrency per key; queued tasks start as others end", async () => {
    const { rt, host, finish } = await setup({ tasks: { concurrency: 2 } })
    const ts = []
    for (let i = 0; i < 3; i++) ts.push(await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: `job ${i}` }))
    await flush()
    expect(host.created).toHaveLength(2)
    expect(rt.tasks.get(ts[2]!.id)!.status).toBe("queued")
    expect(rt.tasks.busySlots("builder")).toBe(2)
    expect(rt.tasks.waitingFor("builder")).toBe(1)
    await finish("ses_child1", "one")
    expect(host.created).toHaveLength(3)
    await rt.dispose()
  })

  it("depends_on starts a task after its dependencies and hands their results in", async () => {
    const { rt, host, finish } = await setup()
    const a = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "design the schema", title: "schema" })
    const b = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "write the migration", dependsOn: [a.id] })
    await flush()
    expect(host.created).toHaveLength(1)
    await finish("ses_child1", "tables: users(id, email)")
    expect(host.prompts[1]!.text).toContain("write the migration")
    expect(host.prompts[1]!.text).toContain(`[${a.id} · builder · schema]\ntables: users(id, email)`)
    expect(rt.tasks.get(b.id)!.status).toBe("running")
    await rt.dispose()
  })

  it("refuses unknown dependencies, cycles and nesting past the bound", async () => {
    const { rt, host } = await setup({ tasks: { maxDepth: 2 } })
    await expect(rt.tasks.delegate({ parentSessionId: "s", agent: "builder", prompt: "x", dependsOn: ["tsk_nothere"] })).rejects.toThrow(/not a task/)
    const lead = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "lead it" })
    await flush()
    // From inside the lead's session, depending on the lead itself would wait forever.
    await expect(rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "x", dependsOn: [lead.id] })).rejects.toThrow(/cycle/)
    const sub = await rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "sub" })
    expect(sub).toMatchObject({ depth: 2, parentTaskId: lead.id })
    await flush()
    expect(host.created).toHaveLength(2)
    await expect(rt.tasks.delegate({ parentSessionId: "ses_child2", agent: "builder", prompt: "deeper" })).rejects.toThrow(/nested too deep/)
    await rt.dispose()
  })

  it("tasks with overlapping scopes do not run at the same time", async () => {
    const { rt, host, finish } = await setup()
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a", scope: ["src/auth/**"] })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b", scope: ["src/**"] })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "c", scope: ["docs/**"] })
    await flush()
    expect(host.prompts.map((p) => p.text)).toEqual(["a", "c"])
    await finish("ses_child1", "done a")
    expect(host.prompts.map((p) => p.text)).toEqual(["a", "c", "b"])
    await rt.dispose()
  })

  it("a task waiting for another's write scope holds no model slot", async () => {
    const { rt, host, finish } = await setup({ tasks: { concurrency: 2 } })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a", scope: ["src/**"] })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b", scope: ["src/auth/**"] })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "c" })
    await flush()
    // b waits for a's scope without a slot, so c gets the second one.
    expect(host.prompts.map((p) => p.text).sort()).toEqual(["a", "c"])
    expect(rt.tasks.busySlots("builder")).toBe(2)
    await finish(host.prompts.find((p) => p.text === "a")!.sessionId, "done a")
    expect(host.prompts.map((p) => p.text).slice(2)).toEqual(["b"])
    await rt.dispose()
  })

  it("a task waiting for the user gives its slot back, and takes one again before it goes on", async () => {
    const { rt, host, finish } = await setup({ tasks: { concurrency: 1 } })
    const a = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a" })
    const b = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b" })
    await flush()
    expect(host.prompts.map((p) => p.text)).toEqual(["a"])
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "Which DB?" })
    await flush()
    // a waits for the user: b runs meanwhile.
    expect(host.prompts.map((p) => p.text)).toEqual(["a", "b"])
    expect(rt.tasks.get(b.id)!.status).toBe("running")
    let returned = false
    void asked.then(() => (returned = true))
    await rt.questions.answer(rt.questions.open()[0]!.id, "pg", "user")
    await flush()
    // The answer is recorded, but a's agent goes on only once b gives the slot back.
    expect(returned).toBe(false)
    expect(rt.tasks.get(a.id)!.status).toBe("waiting_for_answer")
    await finish("ses_child2", "done b")
    expect(returned).toBe(true)
    expect(rt.tasks.get(a.id)!.status).toBe("running")
    expect(rt.tasks.busySlots("builder")).toBe(1)
    await rt.dispose()
  })

  it("a nested task's question goes to the session the user talks in; its result to the task that delegated it", async () => {
    const { rt, finish, host } = await setup()
    const lead = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "lead" })
    await flush()
    const sub = await rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "sub" })
    await flush()
    void rt.questions.ask({ sessionId: "ses_child2", question: "Which DB?" })
    await flush()
    expect(rt.outbox.recipient({ kind: "question", taskId: sub.id })).toBe("ses_root")
    expect(rt.outbox.recipient({ kind: "completion", taskId: sub.id })).toBe("ses_child1")
    expect(rt.deliverer.pending("ses_root").map((e) => [e.kind, e.taskId])).toEqual([["question", sub.id]])
    await rt.questions.answer(rt.questions.open()[0]!.id, "pg", "user")
    await flush()
    await finish("ses_child2", "sub done")
    await rt.deliverer.idle()
    // The lead's session is idle: the result goes straight in, and nowhere else.
    expect(host.injections.map((i) => [i.sessionId, i.meta.kind])).toEqual([["ses_child1", "completion"]])
    expect(host.injections[0]!.text).toContain("sub done")
    expect(rt.tasks.get(lead.id)!.status).toBe("running")
    await rt.dispose()
  })

  it("cancel aborts the task and its descendants, deepest first", async () => {
    const { rt, host } = await setup()
    const lead = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "lead" })
    await flush()
    const sub = await rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "sub" })
    await flush()
    const gone = await rt.tasks.cancel(lead.id)
    expect(gone.map((t) => t.id)).toEqual([sub.id, lead.id])
    expect(host.aborted).toEqual(["ses_child2", "ses_child1"])
    expect(rt.tasks.get(lead.id)!.status).toBe("cancelled")
    expect(rt.tasks.get(sub.id)!.status).toBe("cancelled")
    await rt.dispose()
  })

  it("reports a stall after stallMs without activity, but never while waiting for an answer", async () => {
    const { rt, deps } = await setup({ tasks: { stallMs: 60_000 } })
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    deps.time.advance(30_000)
    rt.tasks.touch("ses_child1")
    deps.time.advance(59_000)
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    deps.time.advance(2_000)
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("stalled")
    expect(rt.deliverer.pending("ses_root").map((e) => [e.kind, e.priority])).toEqual([["status", "high"]])
    // Activity brings it back.
    rt.tasks.touch("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    // Waiting for the user for an hour is not a stall.
    await rt.tasks.setWaiting(t.id, true)
    deps.time.advance(3_600_000)
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("waiting_for_answer")
    await rt.dispose()
  })

  it("the reconciliation sweep repairs a lost idle event", async () => {
    const { rt, deps, host } = await setup({ tasks: { reconcileMs: 30_000 } })
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    rt.tasks.startSweep()
    host.busy.delete("ses_child1")
    host.outcomes.set("ses_child1", { completed: true, text: "finished quietly", createdAt: deps.time.now })
    deps.time.advance(30_000)
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "completed", result: "finished quietly" })
    await rt.dispose()
  })

  it("a reply stopped outside NSO (quitting OpenCode, Esc in the child) holds the task and asks; it is not a cancellation", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x", title: "job" })
    await flush()
    host.outcomes.set("ses_child1", { completed: true, text: "", createdAt: deps.time.now, error: { name: "MessageAbortedError", message: "aborted", aborted: true } })
    await rt.tasks.onIdle("ses_child1")
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("stalled")
    const open = rt.questions.open()
    expect(open).toHaveLength(1)
    expect(open[0]).toMatchObject({ from: "nso", taskId: t.id, options: ["resume", "cancel"] })
    expect(open[0]!.text).toContain("was stopped before it finished")
    await rt.questions.answer(open[0]!.id, "resume", "user")
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    expect(host.prompts.at(-1)!.text).toContain("Your work on this task was interrupted")
    await rt.dispose()
  })

  it("a child that ends in an error fails the task and tells the parent (high)", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    host.outcomes.set("ses_child1", { completed: true, text: "", createdAt: deps.time.now, error: { name: "APIError", message: "rate limited", aborted: false } })
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "failed", error: "APIError: rate limited" })
    expect(rt.deliverer.pending("ses_root").map((e) => [e.kind, e.priority])).toEqual([["failure", "high"]])
    await rt.dispose()
  })
})

describe("questions", () => {
  it("ask waits for the answer; the question goes to the root Oracle's buffer with ids", async () => {
    const { rt } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "Which DB?", options: ["pg", "sqlite"] })
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("waiting_for_answer")
    const [q] = rt.questions.open()
    expect(rt.deliverer.pending("ses_root")[0]).toMatchObject({ kind: "question", priority: "high", taskId: t.id, questionId: q!.id, text: "Which DB?\nOptions: pg | sqlite" })
    const r = await rt.questions.answer(q!.id, "pg", "user")
    expect(r.delivered).toBe("passed to the waiting agent")
    expect((await asked).outcome).toEqual({ kind: "answered", answer: "pg", by: "user" })
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    // Answered before the Oracle saw it: the buffered question is withdrawn.
    expect(rt.deliverer.pending("ses_root")).toEqual([])
    await expect(rt.questions.answer(q!.id, "again", "user")).rejects.toThrow(/already answered/)
    await rt.dispose()
  })

  it("an urgent question is toasted at once", async () => {
    const { rt, host } = await setup()
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    void rt.questions.ask({ sessionId: "ses_child1", question: "Delete prod data?", urgency: "urgent" })
    await flush()
    expect(host.toasts.some((t) => t.message.includes("Delete prod data?") && t.variant === "warning")).toBe(true)
    expect(rt.deliverer.pending("ses_root")[0]!.priority).toBe("urgent")
    await rt.dispose()
  })

  it("times out, tells the agent to proceed, keeps the question open and forwards a late answer", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "Colour?", timeoutMs: 5000 })
    await flush()
    deps.time.advance(5000)
    const { outcome, question } = await asked
    expect(outcome).toEqual({ kind: "timeout", waitedMs: 5000 })
    expect(rt.questions.get(question.id)).toMatchObject({ status: "open" })
    expect(rt.questions.get(question.id)!.timedOutAt).toBeDefined()
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    const r = await rt.questions.answer(question.id, "blue", "user")
    expect(r.delivered).toBe("sent to the agent's session (it had stopped waiting)")
    expect(host.prompts.at(-1)).toMatchObject({ sessionId: "ses_child1", agent: "builder" })
    expect(host.prompts.at(-1)!.text).toContain('Late answer to your question "Colour?": blue')
    await rt.dispose()
  })

  it("ask_user outside a task is refused with what to do instead", async () => {
    const { rt } = await setup()
    await expect(rt.questions.ask({ sessionId: "ses_root", question: "?" })).rejects.toThrow(/ask the user directly/)
    await rt.dispose()
  })

  it("cancelling a task releases its waiting question", async () => {
    const { rt } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "?" })
    await flush()
    await rt.tasks.cancel(t.id)
    expect((await asked).outcome).toEqual({ kind: "cancelled" })
    await rt.dispose()
  })
})

describe("restart", () => {
  async function crashWithRunningTask(policy: "kill" | "persist" | "ask") {
    const dir = tempDir()
    const first = await setup({}, dir)
    const t = await first.rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "long job" })
    await flush()
    await first.rt.journal.close() // the crash: nothing else is written
    const deps = fakeDeps()
    deps.fakeHost.known.set("ses_child1", { id: "ses_child1", parentId: "ses_root" })
    const second = await setup({ tasks: { closePolicy: policy } }, dir, deps)
    await second.rt.startBackground()
    await flush()
    return { t, ...second }
  }

  it("ask (default): the task waits and the Oracle is asked resume or cancel", async () => {
    const { rt, t } = await crashWithRunningTask("ask")
    expect(rt.tasks.get(t.id)!.status).toBe("stalled")
    const [q] = rt.questions.open()
    expect(q).toMatchObject({ from: "nso", taskId: t.id, options: ["resume", "cancel"] })
    expect(rt.deliverer.pending("ses_root")[0]).toMatchObject({ kind: "question", questionId: q!.id })
    await rt.questions.answer(q!.id, "resume", "user")
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    await rt.dispose()
  })

  it("ask: an answer in a sentence is read for its choice ('no problem, resume' resumes); an unclear one is refused, nothing recorded", async () => {
    const { rt, t } = await crashWithRunningTask("ask")
    const [q] = rt.questions.open()
    await expect(rt.questions.answer(q!.id, "hmm, not sure", "user")).rejects.toThrow(/needs one of: resume, cancel.*names none of them/)
    await expect(rt.questions.answer(q!.id, "resume or cancel, whatever", "user")).rejects.toThrow(/names more than one/)
    expect(rt.questions.get(q!.id)!.status).toBe("open")
    await rt.questions.answer(q!.id, "No problem, resume it", "user")
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    await rt.dispose()
  })

  it("ask: 'don't resume, cancel it' and 'no, stop it' cancel", async () => {
    for (const answer of ["don't resume, cancel it", "no, stop it"]) {
      const { rt, t } = await crashWithRunningTask("ask")
      await rt.questions.answer(rt.questions.open()[0]!.id, answer, "user")
      expect(rt.tasks.get(t.id)!.status, answer).toBe("cancelled")
      await rt.dispose()
    }
  })

  it("ask: the reply the quit aborted does not cancel the task while the user decides; resume later still works", async () => {
    const { rt, t, host, deps } = await crashWithRunningTask("ask")
    // Quitting OpenCode (/exit) marks the reply in flight aborted; the sweep sees the session idle.
    host.outcomes.set("ses_child1", { completed: true, text: "", createdAt: deps.time.now, error: { name: "MessageAbortedError", message: "aborted", aborted: true } })
    await rt.tasks.reconcile()
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("stalled")
    await rt.questions.answer(rt.questions.open()[0]!.id, "resume", "user")
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    expect(host.prompts.at(-1)!.text).toContain("Your work on this task was interrupted")
    await rt.dispose()
  })

  it("persist resumes the agent; kill cancels and says so", async () => {
    const p = await crashWithRunningTask("persist")
    expect(p.rt.tasks.get(p.t.id)!.status).toBe("running")
    expect(p.host.prompts.at(-1)!.text).toContain("Your work on this task was interrupted")
    await p.rt.dispose()
    const k = await crashWithRunningTask("kill")
    expect(k.rt.tasks.get(k.t.id)!.status).toBe("cancelled")
    expect(k.host.aborted).toEqual(["ses_child1"])
    await k.rt.dispose()
  })

  it("a task whose child finished before the crash completes, once", async () => {
    const dir = tempDir()
    const first = await setup({}, dir)
    const t = await first.rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "quick job" })
    await flush()
    await first.rt.journal.close()
    const deps = fakeDeps()
    deps.fakeHost.outcomes.set("ses_child1", { completed: true, text: "all done", createdAt: Number.MAX_SAFE_INTEGER })
    const second = await setup({}, dir, deps)
    await second.rt.startBackground()
    await second.rt.startBackground()
    expect(second.rt.tasks.get(t.id)).toMatchObject({ status: "completed", result: "all done" })
    expect(second.rt.deliverer.pending("ses_root").filter((e) => e.kind === "completion")).toHaveLength(1)
    await second.rt.dispose()
    expect(existsSync(join(dir, ".opencode/nso/journal.jsonl"))).toBe(true)
  })
})

describe("compaction of the Oracle's session", () => {
  it("keeps the task board: running tasks, pending questions, undelivered messages", async () => {
    const { rt } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x", title: "the login page" })
    await flush()
    void rt.questions.ask({ sessionId: "ses_child1", question: "Which DB?" })
    await flush()
    const [board] = rt.prompt.compacting("ses_root")
    expect(board).toContain("NSO task board")
    expect(board).toMatch(new RegExp(`- task ${t.id} · builder · waiting_for_answer · the login page · pending question q_\\w+: Which DB\\?`))
    expect(board).toMatch(/- waiting for delivery: \[NSO · builder · task tsk_\w+ · question q_\w+\]/)
    expect(rt.prompt.compacting("ses_other")).toEqual([])
    await rt.dispose()
  })
})

describe("write guard", () => {
  it("refuses writes outside the task's scope and into another running task's scope", async () => {
    const { rt, dir } = await setup()
    const guard = (sid: string, tool: string, targets: string[]) => refuseWrite({ projectDir: dir, tasks: rt.state.tasks, own: rt.tasks.bySessionId(sid), tool, targets })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a", scope: ["src/auth/**"] })
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b", scope: ["docs/**"] })
    await flush()
    expect(guard("ses_child1", "write", writeTargets("write", { filePath: join(dir, "src/auth/login.ts") }))).toBeUndefined()
    expect(guard("ses_child1", "edit", writeTargets("edit", { filePath: join(dir, "README.md") }))).toMatch(/outside your task's write scope \(src\/auth\/\*\*\)/)
    expect(guard("ses_child1", "write", writeTargets("write", { filePath: "/etc/passwd" }))).toMatch(/outside your task's write scope/)
    expect(guard("ses_root", "write", writeTargets("write", { filePath: join(dir, "docs/a.md") }))).toMatch(/belongs to running task tsk_\w+ \(builder, scope docs\/\*\*\)/)
    expect(guard("ses_child1", "read", writeTargets("read", { filePath: join(dir, "README.md") }))).toBeUndefined()
    await rt.dispose()
  })
})

describe("after a restart, the Oracle's session is told", () => {
  it("about open questions it saw before the restart: once, where the user writes next, without a model turn", async () => {
    const dir = tempDir()
    const first = await setup({}, dir)
    await first.rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    void first.rt.questions.ask({ sessionId: "ses_child1", question: "Port?" })
    await flush()
    // The Oracle saw the question before the crash.
    first.rt.sessionBusy("ses_root", false)
    first.deps.time.advance(1000)
    await first.rt.deliverer.idle()
    expect(first.host.injections).toHaveLength(1)
    await first.rt.journal.close()

    const deps = fakeDeps()
    deps.time.advance(10_000)
    const second = await setup({}, dir, deps)
    await second.rt.startBackground()
    // Not re-asked in the old session (that would be a model turn nobody reads)…
    await second.rt.init.ensure("ses_root", "chat.message")
    expect(second.rt.deliverer.pending("ses_root").filter((e) => e.kind === "question")).toEqual([])
    // …but shown once, where the user writes next, with how to answer.
    const notes = second.rt.notices.unseen("ses_new")
    expect(notes.filter((n) => n.startsWith("Still waiting for your answer"))).toHaveLength(1)
    expect(notes.find((n) => n.startsWith("Still waiting"))).toMatch(/q_\w+ · builder: Port\? → \/answer q_\w+ <answer>/)
    expect(second.rt.notices.unseen("ses_new")).toEqual([])
    await second.rt.dispose()
  })
})

describe("requests from the CLI", () => {
  it("an answer and a cancellation appended by another writer are acted on", async () => {
    const { rt, dir } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    const u = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "y" })
    await flush()
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "Port?" })
    await flush()
    const [q] = rt.questions.open()
    const { main } = await import("../../scripts/nso.js")
    expect(await main(["answer", q!.id, "8080", "--dir", dir], () => {})).toBe(0)
    expect(await main(["cancel", u.id, "--dir", dir], () => {})).toBe(0)
    await rt.pullForeign()
    expect((await asked).outcome).toEqual({ kind: "answered", answer: "8080", by: "user (cli)" })
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    expect(rt.tasks.get(u.id)!.status).toBe("cancelled")
    // The Oracle did not cancel it, so it is told.
    expect(rt.deliverer.pending("ses_root").map((e) => e.text)).toContain('Task "y" (builder) was cancelled: cancelled by user (cli).')
    await rt.dispose()
  })
})

describe("a task's session deleted by someone", () => {
  it("cancels the task and tells the parent", async () => {
    const { rt } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x", title: "doomed" })
    await flush()
    await rt.sessionDeleted("ses_child1")
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "cancelled", error: "its session was deleted" })
    expect(rt.deliverer.pending("ses_root").map((e) => e.text)).toEqual(['Task "doomed" (builder) was cancelled: its session was deleted.'])
    await rt.dispose()
  })
})

describe("tasks tool", () => {
  const ctx = () => ({ sessionID: "ses_root", messageID: "m", agent: "oracle", directory: "/", worktree: "/", abort: new AbortController().signal, metadata: () => {}, ask: async () => {} })

  it("waits a bounded time with the injected clock, then reports the status; returns the result once done", async () => {
    const { rt, deps, finish } = await setup()
    const { tasksTool } = await import("../../plugin/opencode/tools/tasks.js")
    const tool = tasksTool(rt)
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x", title: "job" })
    await flush()
    const waiting = tool.execute({ id: t.id, wait_ms: 5000 }, ctx())
    await flush()
    deps.time.advance(5000)
    expect(await waiting).toBe(`Task ${t.id} is running. No result yet; it will arrive as an [NSO] message.`)
    const second = tool.execute({ id: t.id, wait_ms: 60_000 }, ctx())
    await flush()
    await finish("ses_child1", "all done")
    expect(await second).toBe(`Task ${t.id} (builder: "job") completed.\n\nall done`)
    await expect(tool.execute({ id: "tsk_nothere" }, ctx())).rejects.toThrow('tasks: No task "tsk_nothere". Call tasks without an id to list them.')
    await rt.dispose()
  })
})

describe("races", () => {
  it("an error event and an idle event for the same task end it once, with one message", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    host.outcomes.set("ses_child1", { completed: true, text: "", createdAt: deps.time.now, error: { name: "APIError", message: "boom", aborted: false } })
    await Promise.all([rt.tasks.onError("ses_child1", { name: "APIError", message: "boom", aborted: false }), rt.tasks.onIdle("ses_child1")])
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("failed")
    expect(rt.deliverer.pending("ses_root").filter((e) => e.kind === "failure")).toHaveLength(1)
    await rt.dispose()
  })

  it("the same answer arriving from the Oracle and the CLI is passed on once", async () => {
    const { rt, host, dir } = await setup()
    await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    const asked = rt.questions.ask({ sessionId: "ses_child1", question: "Port?" })
    await flush()
    const [q] = rt.questions.open()
    const { main } = await import("../../scripts/nso.js")
    expect(await main(["answer", q!.id, "9090", "--dir", dir], () => {})).toBe(0)
    await Promise.all([rt.questions.answer(q!.id, "8080", "user").catch((e: Error) => e), rt.pullForeign()])
    const outcome = (await asked).outcome
    expect(outcome.kind).toBe("answered")
    // Nothing was forwarded a second time as a "late" answer.
    expect(host.prompts.filter((p) => p.text.includes("Late answer"))).toEqual([])
    await rt.dispose()
  })
})

describe("token accounting and budgets", () => {
  const u = (input: number, output: number) => ({ input, output, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0.001 })

  it("counts a task's turns and tokens as its messages complete, and rolls them up to its parent and the session", async () => {
    const { rt, deps, host, finish } = await setup()
    const lead = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "lead" })
    await flush()
    const sub = await rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "sub" })
    await flush()
    const at = deps.time.now
    rt.tasks.observeAssistant("ses_child1", "m1", { completed: false, createdAt: at }, u(0, 0))
    rt.tasks.observeAssistant("ses_child1", "m1", { completed: true, createdAt: at }, u(100, 20))
    rt.tasks.observeAssistant("ses_child2", "m2", { completed: true, createdAt: at }, u(300, 40))
    rt.tasks.observeAssistant("ses_child2", "m3", { completed: false, createdAt: at }, u(0, 0))
    rt.tasks.observeText("ses_child2", "m3", "p3", "sub done")
    rt.tasks.observeAssistant("ses_child2", "m3", { completed: true, createdAt: at }, u(200, 30))
    // The same message seen again is not counted twice.
    rt.tasks.observeAssistant("ses_child2", "m3", { completed: true, createdAt: at }, u(200, 30))
    await flush()
    expect(rt.tasks.get(sub.id)!.usage).toMatchObject({ input: 500, output: 70, turns: 2 })
    expect(rt.tasks.get(lead.id)!.usage).toMatchObject({ input: 100, output: 20, turns: 1 })
    const { rolledUp, sessionUsage } = await import("../../plugin/tasks/usage.js")
    expect(rolledUp(rt.state.tasks, lead.id)).toMatchObject({ input: 600, output: 90, turns: 3 })
    expect(sessionUsage(rt.state.tasks, "ses_root")).toMatchObject({ input: 600, output: 90, turns: 3 })
    // Journaled: a restart keeps the totals.
    await rt.journal.flush()
    expect(readFileSync(join(rt.projectDir, ".opencode/nso/journal.jsonl"), "utf8")).toContain('"usage":{"input":500,"output":70')
    await finish("ses_child2", "sub done")
    // The lead's session has no pause: the report goes in at once.
    const report = host.injections.find((i) => i.sessionId === "ses_child1")!
    expect(report.text).toBe(`[NSO · builder · task ${sub.id} · completion]\nsub done\n\n(2 turns · 570 tokens (500 in, 70 out) · $0.0020)`)
    await rt.dispose()
  })

  it("a token budget stops the task with its partial result and the reason; the parent is told", async () => {
    const { rt, deps, host } = await setup({ tasks: { maxTokens: 250 } })
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "loop" })
    await flush()
    rt.tasks.observeAssistant("ses_child1", "m1", { completed: false, createdAt: deps.time.now }, u(0, 0))
    rt.tasks.observeText("ses_child1", "m1", "p1", "half of it is done")
    rt.tasks.observeAssistant("ses_child1", "m1", { completed: true, createdAt: deps.time.now }, u(100, 20))
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    rt.tasks.observeAssistant("ses_child1", "m2", { completed: true, createdAt: deps.time.now }, u(100, 30))
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "failed", error: "stopped: it used 250 tokens, at its budget of 250", result: "half of it is done" })
    expect(host.aborted).toContain("ses_child1")
    const msg = rt.deliverer.pending("ses_root").find((e) => e.kind === "failure")!
    expect(msg.text).toContain("Partial result (what it had written so far):\nhalf of it is done")
    await rt.dispose()
  })

  it("limits: a profile's budget overrides the option; a delegate call may lower a limit, never raise it", async () => {
    const { rt } = await setup({ tasks: { maxTokens: 1000, maxTurns: 10 }, agents: { lead: { description: "leads", prompt: "You lead.", delegates: true, max_tokens: 5000 } } })
    const a = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a" })
    const b = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b", maxTokens: 99_999, maxTurns: 3 })
    const c = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "c" })
    const d = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "d", maxTokens: 200 })
    expect([a, b, c, d].map((t) => [t.maxTokens, t.maxTurns])).toEqual([[1000, 10], [1000, 3], [5000, 10], [200, 10]])
    await flush()
    await rt.dispose()
  })

  it("a turn budget stops the task when it starts one turn too many", async () => {
    const { rt, deps } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x", maxTurns: 2 })
    await flush()
    for (const m of ["m1", "m2"]) rt.tasks.observeAssistant("ses_child1", m, { completed: true, createdAt: deps.time.now }, u(1, 1))
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    rt.tasks.observeAssistant("ses_child1", "m3", { completed: false, createdAt: deps.time.now }, u(0, 0))
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "failed", error: "stopped: it reached its limit of 2 model turns" })
    await rt.dispose()
  })
})

describe("retries after transient failures", () => {
  const failing = (deps: ReturnType<typeof fakeDeps>, transient: boolean) => ({ completed: true, text: "", createdAt: deps.time.now, error: { name: "APIError", message: "503 unavailable", aborted: false, transient } })

  it("retries in the same session after the backoff, bounded, each retry on the task; then fails saying how often it tried", async () => {
    const { rt, deps, host, finish } = await setup({ tasks: { retry: { attempts: 2, backoffMs: 1000, maxBackoffMs: 1500 } } })
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    host.outcomes.set("ses_child1", failing(deps, true))
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "running", retries: [{ reason: "APIError: 503 unavailable", delayMs: 1000 }] })
    // An idle of the failed turn seen again does not count as a second failure.
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)!.retries).toHaveLength(1)
    expect(host.prompts).toHaveLength(1)
    deps.time.advance(999)
    await flush()
    expect(host.prompts).toHaveLength(1)
    deps.time.advance(1)
    await flush()
    expect(host.prompts.at(-1)).toMatchObject({ sessionId: "ses_child1", agent: "builder" })
    expect(host.prompts.at(-1)!.text).toContain("Automatic retry 1 of 2")
    // The retry's reply starts, and fails again: the second wait is doubled, within the bound.
    deps.time.advance(10)
    rt.tasks.observeAssistant("ses_child1", "m2", { completed: false, createdAt: deps.time.now })
    host.outcomes.set("ses_child1", failing(deps, true))
    await rt.tasks.onError("ses_child1", { name: "APIError", message: "503 again", aborted: false, transient: true })
    await flush()
    expect(rt.tasks.get(t.id)!.retries!.map((r) => r.delayMs)).toEqual([1000, 1500])
    deps.time.advance(1500)
    await flush()
    deps.time.advance(10)
    rt.tasks.observeAssistant("ses_child1", "m3", { completed: false, createdAt: deps.time.now })
    await rt.tasks.onError("ses_child1", { name: "APIError", message: "503 for good", aborted: false, transient: true })
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "failed", error: "APIError: 503 for good (after 2 automatic retries)" })
    void finish
    await rt.dispose()
  })

  it("never retries a failure that is not transient", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    host.outcomes.set("ses_child1", failing(deps, false))
    await rt.tasks.onIdle("ses_child1")
    await flush()
    expect(rt.tasks.get(t.id)).toMatchObject({ status: "failed", error: "APIError: 503 unavailable" })
    expect(rt.tasks.get(t.id)!.retries).toBeUndefined()
    await rt.dispose()
  })

  it("a task cancelled while it waits for its retry is not sent back to work", async () => {
    const { rt, deps, host } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "x" })
    await flush()
    await rt.tasks.onError("ses_child1", { name: "UnknownError", message: "terminated", aborted: false, transient: true })
    await flush()
    await rt.tasks.cancel(t.id, "no longer needed")
    deps.time.advance(120_000)
    await flush()
    expect(rt.tasks.get(t.id)!.status).toBe("cancelled")
    expect(host.prompts).toHaveLength(1)
    await rt.dispose()
  })
})

describe("a result taken in the tool call (delegate with wait)", () => {
  it("is not posted while claimed; released before the end, the result is posted as usual", async () => {
    const { rt, finish } = await setup()
    const a = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a" })
    const b = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "b" })
    rt.tasks.claimResult(a.id)
    const claimB = rt.tasks.claimResult(b.id)
    await flush()
    await finish("ses_child1", "a done")
    rt.tasks.resultTaken(a.id)
    await claimB.release()
    await finish("ses_child2", "b done")
    expect(rt.deliverer.pending("ses_root").map((e) => e.text)).toEqual(["b done"])
    await rt.dispose()
  })

  it("a task that ended while claimed is posted when the waiter lets go without taking it", async () => {
    const { rt, finish } = await setup()
    const a = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "builder", prompt: "a" })
    const claim = rt.tasks.claimResult(a.id)
    await flush()
    await finish("ses_child1", "a done")
    expect(rt.deliverer.pending("ses_root")).toHaveLength(0)
    await claim.release()
    await flush()
    expect(rt.deliverer.pending("ses_root").map((e) => [e.kind, e.text])).toEqual([["completion", "a done"]])
    await rt.dispose()
  })
})

describe("stopping everything", () => {
  it("cancelAll stops a session tree's tasks and team runs, deepest first, and leaves other sessions' work alone", async () => {
    const { rt } = await setup({ teams: { duo: { description: "two", pattern: "parallel", members: [{ agent: "builder" }, { agent: "scout" }] } } })
    const lead = await rt.tasks.delegate({ parentSessionId: "ses_root", agent: "lead", prompt: "lead" })
    await flush()
    const sub = await rt.tasks.delegate({ parentSessionId: "ses_child1", agent: "builder", prompt: "sub" })
    const { run } = await rt.runs.start({ team: "duo", goal: "g", parentSessionId: "ses_root", startedBy: "user" })
    const other = await rt.tasks.delegate({ parentSessionId: "ses_other", agent: "builder", prompt: "elsewhere" })
    await flush()
    const r = await rt.cancelAll("ses_root", "stop everything")
    expect(r.runs).toEqual([run.id])
    expect(r.tasks.map((t) => t.id)).toEqual(expect.arrayContaining([lead.id, sub.id]))
    for (const id of [lead.id, sub.id]) expect(rt.tasks.get(id)!.status).toBe("cancelled")
    expect(rt.runs.get(run.id)!.phase).toBe("cancelled")
    expect(rt.tasks.get(other.id)!.status).not.toBe("cancelled")
    await rt.dispose()
  })
})
