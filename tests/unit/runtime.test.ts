import { existsSync, readFileSync, writeFileSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { Options } from "../../plugin/options.js"
import { Runtime } from "../../plugin/runtime.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

const opts = (over: object = {}) => Options.parse({ journal: { fsync: false }, buffer: { pauseMs: 2000 }, ...over })
const flush = () => new Promise((r) => setImmediate(r))

async function runtime(dir = tempDir(), deps = fakeDeps(), o = opts()) {
  const rt = await Runtime.start(deps, dir, o)
  return { rt, deps, dir }
}

describe("runtime: session init", () => {
  it("runs once whatever triggers it and however often", async () => {
    const { rt, dir } = await runtime()
    await Promise.all([
      rt.sessionCreated("ses_a", {}),
      rt.sessionCreated("ses_a", {}),
      rt.inbound.message("ses_a", "oracle", [{ text: "hi" }]),
      rt.init.ensure("ses_a", "tool.execute"),
      rt.prompt.system("ses_a"),
    ])
    const log = readFileSync(join(dir, ".opencode/nso/init.log"), "utf8").trim().split("\n")
    expect(log).toHaveLength(1)
    expect(JSON.parse(log[0]!)).toMatchObject({ session: "ses_a", trigger: "session.created", ok: true })
    expect(rt.state.initialized.has("ses_a")).toBe(true)
    await rt.dispose()
  })

  it("a failing init is logged and toasted once; the session goes on without additions", async () => {
    const dir = tempDir()
    // A file where the context folder should be: creating memory files fails.
    writeFileSync(join(dir, "blocker"), "")
    const { rt, deps } = await runtime(dir, fakeDeps(), opts({ init: { contextDir: "blocker/context" } }))
    expect(await rt.prompt.system("ses_a")).toEqual([])
    expect(await rt.prompt.system("ses_b")).toEqual([])
    const log = readFileSync(join(dir, ".opencode/nso/init.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    expect(log.map((l) => l.ok)).toEqual([false, false])
    expect(log[0].steps.find((s: { ok: boolean }) => !s.ok).step).toBe("memory-files")
    expect(deps.fakeHost.toasts.filter((t) => t.variant === "error")).toHaveLength(1)
    await rt.dispose()
  })

  it("cuts the memory block to its budget and says so", async () => {
    const dir = tempDir()
    mkdirSync(join(dir, ".opencode/context/00_meta"), { recursive: true })
    writeFileSync(join(dir, ".opencode/context/00_meta/tech-stack.md"), "T".repeat(10_000))
    const { rt } = await runtime(dir, fakeDeps(), opts({ init: { budgetChars: 2000 } }))
    const system = (await rt.prompt.system("ses_a")).join("\n")
    const block = system.slice(system.indexOf("# Project memory"))
    expect(block.length).toBeLessThanOrEqual(2000)
    expect(block).toMatch(/\[… truncated by NSO: \d+ more characters; read \.opencode\/context\/00_meta\/tech-stack\.md for the rest\]/)
    await rt.dispose()
  })

  it("a child session gets no project memory (and no header unless NSO made it)", async () => {
    const { rt, deps } = await runtime()
    deps.fakeHost.known.set("ses_child", { id: "ses_child", parentId: "ses_root" })
    expect(await rt.prompt.system("ses_child")).toEqual([])
    await rt.dispose()
  })
})

describe("runtime: delivery to the Oracle", () => {
  it("holds an agent message while the user is active and delivers it once at the pause", async () => {
    const { rt, deps } = await runtime()
    await rt.inbound.message("ses_root", "oracle", [{ text: "a question for you" }])
    await rt.outbox.post({ sessionId: "ses_root", source: "agent", from: "builder", to: "oracle", kind: "question", priority: "high", taskId: "tsk_aaaaaa", questionId: "q_aaaaaa", text: "Which DB?" })
    await flush()
    expect(deps.fakeHost.injections).toEqual([])
    rt.sessionBusy("ses_root", false) // the Oracle finished answering the user
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections).toEqual([])
    deps.time.advance(2000)
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections).toHaveLength(1)
    const inj = deps.fakeHost.injections[0]!
    expect(inj.text).toBe("[NSO · builder · task tsk_aaaaaa · question q_aaaaaa]\nWhich DB?")
    expect(inj.noReply).toBe(false)
    expect(inj.meta).toMatchObject({ source: "agent", from: "builder", kind: "question" })
    expect(inj.meta.ids).toEqual(expect.arrayContaining(["tsk_aaaaaa", "q_aaaaaa"]))
    deps.time.advance(60_000)
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections).toHaveLength(1)
    await rt.dispose()
  })

  it("after a crash mid-delivery, delivers what was not injected and never repeats what was", async () => {
    const dir = tempDir()
    const deps1 = fakeDeps()
    const { rt } = await runtime(dir, deps1)
    rt.sessionBusy("ses_root", false)
    deps1.time.advance(5000)
    const a = await rt.outbox.post({ sessionId: "ses_root", source: "agent", from: "builder", to: "oracle", kind: "status", priority: "medium", text: "A" })
    await rt.deliverer.idle()
    expect(deps1.fakeHost.injections).toHaveLength(1)
    // Simulate the crash window: a batch journaled as started, then the process died.
    await rt.write({ type: "message.buffered", envelope: { ...a, id: "msg_bbbbbb", text: "B", sessionId: "ses_root" } })
    await rt.write({ type: "delivery.started", batchId: "dlv_x", sessionId: "ses_root", ids: ["msg_bbbbbb"] })
    await rt.journal.close()

    const deps2 = fakeDeps()
    deps2.fakeHost.injections = [...deps1.fakeHost.injections] // the session keeps what was injected
    const { rt: rt2 } = await runtime(dir, deps2)
    // Nothing is sent to OpenCode while the plugin is still starting.
    expect(deps2.fakeHost.injections).toHaveLength(1)
    await rt2.startBackground()
    rt2.sessionBusy("ses_root", false)
    deps2.time.advance(5000)
    await rt2.deliverer.idle()
    const texts = deps2.fakeHost.injections.map((i) => i.text)
    expect(texts.filter((t) => t.endsWith("\nA"))).toHaveLength(1)
    expect(texts.filter((t) => t.endsWith("\nB"))).toHaveLength(1)
    await rt2.dispose()
  })

  it("a failed injection is retried, not lost", async () => {
    const { rt, deps } = await runtime()
    rt.sessionBusy("ses_root", false)
    deps.time.advance(5000)
    deps.fakeHost.failInject = true
    await rt.outbox.post({ sessionId: "ses_root", source: "agent", from: "builder", to: "oracle", kind: "failure", priority: "high", text: "boom" })
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections).toHaveLength(0)
    deps.fakeHost.failInject = false
    deps.time.advance(1000)
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections.map((i) => i.text)).toEqual(["[NSO · builder · failure]\nboom"])
    await rt.dispose()
  })
})

describe("runtime: close", () => {
  it("appends a dated summary to progress.md when a root session is deleted", async () => {
    const { rt, dir, deps } = await runtime()
    await rt.sessionCreated("ses_root", { title: "Login work" })
    await rt.inbound.message("ses_root", "oracle", [{ text: "hi" }])
    await rt.sessionDeleted("ses_root")
    const progress = readFileSync(join(dir, ".opencode/context/01_memory/progress.md"), "utf8")
    const date = new Date(deps.time.now).toISOString().slice(0, 10)
    expect(progress).toContain(`## ${date}`)
    expect(progress).toContain('session "Login work" (ses_root)')
    expect(progress).toContain("- Messages: 1 from the user, 0 from agents, 0 from the system")
    await rt.dispose()
  })

  it("flushSync writes summaries for active root sessions, once", async () => {
    const { rt, dir } = await runtime()
    await rt.inbound.message("ses_root", "oracle", [{ text: "hi" }])
    rt.closer.flushSync()
    rt.closer.flushSync()
    const progress = readFileSync(join(dir, ".opencode/context/01_memory/progress.md"), "utf8")
    expect(progress.match(/\(server stopped\)/g)).toHaveLength(1)
    expect(existsSync(join(dir, ".opencode/nso/journal.jsonl"))).toBe(true)
    await rt.dispose()
  })
})

describe("runtime: a lost idle event", () => {
  it("is repaired by asking OpenCode, so held messages are not held for ever", async () => {
    const { rt, deps } = await runtime()
    await rt.inbound.message("ses_root", "oracle", [{ text: "hi" }]) // busy: the Oracle answers
    await rt.outbox.post({ sessionId: "ses_root", source: "agent", from: "builder", to: "oracle", kind: "status", priority: "medium", text: "progress" })
    // The idle event never arrives. OpenCode says nothing is busy.
    await rt.startBackground()
    deps.time.advance(30_000)
    await new Promise((r) => setImmediate(r))
    await rt.deliverer.idle()
    deps.time.advance(2_000)
    await rt.deliverer.idle()
    expect(deps.fakeHost.injections.map((i) => i.text)).toEqual(["[NSO · builder · status]\nprogress"])
    await rt.dispose()
  })
})
