import { beforeAll, describe, expect, it } from "vitest"
import { NSO_TOOLS } from "../../plugin/opencode/shapes.js"
import type { RecordedRequest } from "../../scripts/harness/mock-model.js"
import type { RunningOpencode } from "../../scripts/harness/opencode.js"
import { liveServer, until } from "./helpers.js"

/** Bytes of what the model is sent: the tool schemas, and the whole request. */
const toolBytes = (r: RecordedRequest) => r.toolBytes
const requestBytes = (r: RecordedRequest) => r.toolBytes + Buffer.byteLength(JSON.stringify(r.messages))

describe("the token bill, measured from the model request", () => {
  // Empty memory files: the comparison is NSO's own additions, not the user's notes.
  const empty = Object.fromEntries(["00_meta/tech-stack.md", "00_meta/patterns.md", "01_memory/active_context.md", "01_memory/progress.md"].map((f) => [`.opencode/context/${f}`, ""]))
  const srv = liveServer({ nso: { buffer: { pauseMs: 200 }, init: { sweepDelayMs: 50 } }, files: empty })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })
  const first = async (agent: string, text: string) => {
    const s = (await oc.client.session.create({ body: { title: agent } })).data!.id
    await oc.client.session.prompt({ path: { id: s }, body: { agent, parts: [{ type: "text", text }] } })
    return model.waitFor((r) => r.lastUser === text && !r.lastToolResult, { what: `the ${agent} agent's first request` })
  }

  it("the Oracle costs no more than OpenCode's default agent; agents NSO does not own carry none of NSO's tools; one way to hand off", async () => {
    model.script([{ reply: { text: "ok" } }])
    const oracle = await first("oracle", "hello oracle")
    const build = await first("build", "hello build")
    // OpenCode's own agent, on the same server: none of NSO's tools.
    for (const t of NSO_TOOLS) expect(build.tools, t).not.toContain(t)
    // The Oracle hands off with delegate only: OpenCode's blocking task tool is not offered.
    expect(oracle.tools).toContain("delegate")
    expect(oracle.tools).not.toContain("task")
    expect(toolBytes(oracle)).toBeLessThanOrEqual(toolBytes(build))
    expect(requestBytes(oracle)).toBeLessThanOrEqual(requestBytes(build) + 2000)
  })

  it("ask_user works for a builder started through OpenCode's own task tool (as @builder does): the question reaches the user's session and the answer comes back", async () => {
    model.script([
      { when: { user: "use the task tool" }, reply: { toolCalls: [{ name: "task", args: { description: "ask something", prompt: "subtask that asks", subagent_type: "builder" } }] }, times: 1 },
      { when: { user: "subtask that asks" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which port for the subtask?", timeout_ms: 60000 } }] }, times: 1 },
      { when: { toolResult: "The user answered: 9090" }, reply: { text: "Subtask done on port 9090." }, times: 1 },
      { when: { toolResult: "Subtask done on port 9090." }, reply: { text: "The builder used port 9090." }, times: 1 },
      { when: { user: "answered question" }, reply: { text: "Noted." } },
      { when: { toolResult: "Subtask done" }, reply: { text: "Noted." } },
    ])
    const toasts: { message: string }[] = []
    const events = await oc.client.event.subscribe()
    void (async () => {
      for await (const ev of events.stream as AsyncIterable<{ type: string; properties: { message: string } }>) if (ev.type === "tui.toast.show") toasts.push(ev.properties)
    })().catch(() => {})
    const root = (await oc.client.session.create({ body: { title: "subtask" } })).data!.id
    // OpenCode's build agent still has its task tool; the builder it starts is NSO's.
    const done = oc.client.session.prompt({ path: { id: root }, body: { agent: "build", parts: [{ type: "text", text: "use the task tool" }] } })
    done.catch(() => {}) // awaited below; a failed test must not leave it unhandled
    // The user's session is busy in OpenCode's blocking task call: the question is toasted at once
    // (and on the /nso-status board); nothing is pushed into the busy turn.
    const toast = await until(() => toasts.find((t) => t.message.includes("Which port for the subtask?")), "the question toasted")
    expect(toast.message).toMatch(/\[NSO · builder · question q_\w+ · URGENT\]/)
    const qid = /question (q_\w+)/.exec(toast.message)![1]!
    const answered = oc.client.session.command({ path: { id: root }, body: { command: "answer", arguments: `${qid} 9090` } })
    answered.catch(() => {})
    await model.waitFor((r) => r.lastToolResult?.includes("The user answered: 9090") ?? false, { what: "the answer back in the builder's ask_user call" })
    await Promise.all([done, answered])
    // The blocked turn went on: the task tool's result reached the build agent (with the /answer
    // note the user typed meanwhile, which OpenCode had queued).
    await model.waitFor((r) => r.messages.some((m) => m.role === "tool" && JSON.stringify(m.content).includes("Subtask done on port 9090.")), {
      what: "the task tool's result in the build agent's next request",
    })
  })
})
