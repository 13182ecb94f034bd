import { beforeAll, describe, expect, it } from "vitest"
import { JOB_TOOLS, ORACLE_TOOLS } from "../../plugin/opencode/shapes.js"
import { type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, liveServer, transcript } from "./helpers.js"

describe("background delegation with user priority (real server)", () => {
  const srv = liveServer({ nso: { buffer: { pauseMs: 300 }, init: { sweepDelayMs: 50 } } })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })

  it("the full story: delegate, keep talking, question waits for the pause, answer, result", async () => {
    model.script([
      // Oracle: delegates on the user's request.
      { when: { user: "build the login page", hasTool: "delegate" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "Implement the login page", title: "login page" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "I asked the builder to do it. What else?" }, times: 1 },
      // Builder: asks the user, then finishes with the answer.
      { when: { user: "Implement the login page", hasTool: "ask_user" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Which database should login use?", options: ["Postgres", "SQLite"] } }] }, times: 1 },
      { when: { toolResult: "The user answered: Postgres" }, reply: { text: "Login page done, sessions stored in Postgres." }, times: 1 },
      // Oracle: the user keeps talking while the builder works (slow reply keeps the session busy).
      { when: { user: "meanwhile, what is 2+2" }, reply: { text: "4.", delayMs: 400 }, times: 1 },
      // Oracle: relays the question, the user's answer is passed back with the ids from the header.
      { when: { userMatch: "question (q_\\w+)\\]" }, reply: { toolCalls: [{ name: "answer", args: { question_id: "$1", answer: "Postgres" } }] }, times: 1 },
      { when: { toolResult: "recorded: passed to the waiting agent" }, reply: { text: "Passed on: Postgres." }, times: 1 },
      { when: { user: "Login page done" }, reply: { text: "The builder finished the login page." }, times: 1 },
    ])
    const root = (await oc.client.session.create({ body: { title: "story" } })).data!
    await oc.client.session.prompt({ path: { id: root.id }, body: { agent: "oracle", parts: [{ type: "text", text: "please build the login page" }] } })
    // The user keeps talking while the builder works.
    await oc.client.session.prompt({ path: { id: root.id }, body: { agent: "oracle", parts: [{ type: "text", text: "meanwhile, what is 2+2" }] } })
    const question = await model.waitFor((r) => /\[NSO · builder · task tsk_\w+ · question q_\w+\]/.test(r.lastUser) && !r.lastToolResult)
    // Delivered only after the user's own exchange ended (the Oracle's reply to it was complete),
    // as one message with the ids.
    const chat = model.requests.find((r) => r.lastUser.includes("meanwhile, what is 2+2"))!
    expect(chat.respondedAt).toBeGreaterThan(0)
    expect(question.at).toBeGreaterThanOrEqual(chat.respondedAt)
    expect(question.lastUser).toContain("Which database should login use?")
    expect(question.lastUser).toContain("Options: Postgres | SQLite")
    const result = await model.waitFor((r) => r.lastUser.includes("Login page done, sessions stored in Postgres."))
    expect(result.lastUser).toMatch(/\[NSO · builder · task tsk_\w+ · completion\]/)
    // Every message NSO put into the Oracle's session is tagged agent, with ids.
    await allIdle(oc.client, "all sessions idle")
    const msgs = await transcript(oc.client, root.id)
    const injected = msgs.filter((m) => m.nso)
    expect(injected.map((m) => [m.nso!.source, m.nso!.from, m.nso!.kind])).toEqual([
      ["agent", "builder", "question"],
      ["agent", "builder", "completion"],
    ])
    // Visible in the TUI's transcript (OpenCode hides synthetic parts), marked by the NSO header.
    for (const m of injected) {
      expect(m.hidden).toBe(false)
      expect(m.text).toMatch(/^\[NSO · builder · task tsk_\w+/)
    }
    // The builder's session is a child of the Oracle's, and its task is completed.
    const children = (await oc.client.session.children({ path: { id: root.id } })).data!
    expect(children).toHaveLength(1)
    const builderReq = model.requests.find((r) => r.lastUser.includes("Implement the login page"))!
    expect(builderReq.system).toContain("Task isolation (NSO)")
    expect(builderReq.tools).toContain("ask_user")
    expect(builderReq.tools).not.toContain("delegate")
    const oracleReq = model.requests.find((r) => r.lastUser.includes("build the login page"))!
    expect(oracleReq.tools).toEqual(expect.arrayContaining(["delegate", "tasks", "answer"]))
    expect(oracleReq.tools).not.toContain("ask_user")
    // Tokens are the user's money: NSO's tools on the Oracle's request stay within 2,800 bytes
    // (1,989 before teams; the shipped teams' names and the profiles they added cost ~200 B;
    // job_start 443 B, "jobs" in the tasks tool's description 3 B; delegate's wait, max_tokens and
    // max_turns 126 B). The Oracle's whole tool list stays under OpenCode's build agent's (tokens.test).
    const nsoBytes = [...ORACLE_TOOLS, ...JOB_TOOLS].reduce((n, t) => n + (oracleReq.toolSizes[t] ?? 0), 0)
    console.log(`NSO tool bytes on the Oracle's request: ${nsoBytes} (${[...ORACLE_TOOLS, ...JOB_TOOLS].map((t) => `${t} ${oracleReq.toolSizes[t]}`).join(", ")})`)
    expect(oracleReq.tools).toContain("job_start")
    expect(nsoBytes).toBeGreaterThan(0)
    expect(nsoBytes).toBeLessThanOrEqual(2800)
  })
})
