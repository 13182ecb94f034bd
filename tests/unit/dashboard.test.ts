import { appendFileSync, existsSync, readFileSync, statSync, writeFileSync } from "node:fs"
import * as fsPromises from "node:fs/promises"
import { createServer } from "node:net"
import { join } from "node:path"
import { describe, expect, it, onTestFinished } from "vitest"
import { dashboardApp, TOKEN_HEADER, type DashboardSource } from "../../plugin/dashboard/app.js"
import { JsonlTail } from "../../plugin/dashboard/audit-tail.js"
import { Assets, inlineJson } from "../../plugin/dashboard/assets.js"
import { Hub } from "../../plugin/dashboard/hub.js"
import { DASHBOARD_USER, liveSource } from "../../plugin/dashboard/live.js"
import { openDashboard, urlFile } from "../../plugin/dashboard/open.js"
import { clean, envelopeItem, itemsFor, taskItem, type Item } from "../../plugin/dashboard/view.js"
import { emptyState } from "../../plugin/journal/state.js"
import { Options } from "../../plugin/options.js"
import type { Task } from "../../plugin/protocol.js"
import { Runtime } from "../../plugin/runtime.js"
import { env, fakeDeps, tempDir } from "../helpers/fake-deps.js"

const TOKEN = "t0ken-for-tests-0123456789abcdef"
const assets = new Assets()

function task(over: Partial<Task> = {}): Task {
  return {
    id: "tsk_aaaa01",
    agent: "builder",
    title: "build it",
    prompt: "build it",
    priority: "medium",
    status: "running",
    parentSessionId: "ses_root",
    sessionId: "ses_child",
    depth: 0,
    scope: [],
    dependsOn: [],
    createdAt: 1,
    updatedAt: 1,
    lastActivityAt: 1,
    ...over,
  }
}

const taskAt = (id: string, title = id): Item => taskItem(emptyState(), task({ id, title }))

function fixedSource(hub = new Hub(), calls: string[] = []): DashboardSource {
  return {
    hub,
    about: { project: "/p", readOnly: false },
    answer: async (id, text) => (calls.push(`answer ${id} ${text}`), "recorded"),
    cancel: async (id) => (calls.push(`cancel ${id}`), "cancelled"),
    telemetry: async () => ({}),
  }
}

/** Reads an SSE response until `enough` says so (or 2 s pass), then stops reading. */
async function readSse(res: Response, enough: (text: string) => boolean): Promise<string> {
  const reader = res.body!.getReader()
  const dec = new TextDecoder()
  let text = ""
  const end = Date.now() + 2_000
  while (!enough(text) && Date.now() < end) {
    const r = await reader.read()
    if (r.done) break
    text += dec.decode(r.value)
  }
  await reader.cancel()
  return text
}

const events = (text: string) =>
  text
    .split("\n\n")
    .filter((b) => b.includes("data:"))
    .map((b) => ({ id: /^id: (.*)$/m.exec(b)?.[1], event: /^event: (.*)$/m.exec(b)?.[1], data: JSON.parse(/^data: (.*)$/m.exec(b)![1]!) as unknown }))

describe("dashboard hub", () => {
  it("numbers changes, skips items that did not change, and resumes after a given id", () => {
    const hub = new Hub(10)
    expect(hub.publish(taskAt("tsk_aaaa01"))).toBe(true)
    const after1 = hub.lastId
    expect(hub.publish(taskAt("tsk_aaaa01"))).toBe(false)
    hub.publish(taskAt("tsk_aaaa02"))
    hub.publish(taskAt("tsk_aaaa01", "renamed"))
    expect(hub.since(after1)!.map((c) => [c.item.id, (c.item.data as { title: string }).title])).toEqual([
      ["tsk_aaaa02", "tsk_aaaa02"],
      ["tsk_aaaa01", "renamed"],
    ])
    expect(hub.since(hub.lastId)).toEqual([])
    expect(hub.snapshot().items.map((i) => i.id).sort()).toEqual(["tsk_aaaa01", "tsk_aaaa02"])
  })

  it("asks for a snapshot when the id is from another server, malformed, in the future, or older than the ring", () => {
    const hub = new Hub(3)
    const first = (hub.publish(taskAt("tsk_aaaa01")), hub.lastId)
    for (let i = 2; i <= 5; i++) hub.publish(taskAt(`tsk_aaaa0${i}`))
    expect(hub.since(first)).toBeUndefined()
    expect(hub.since(`beef0000-1`)).toBeUndefined()
    expect(hub.since("nonsense")).toBeUndefined()
    expect(hub.since(undefined)).toBeUndefined()
    expect(hub.since(`${hub.epoch}-99`)).toBeUndefined()
    // Just inside the ring: the three changes kept after seq 2.
    expect(hub.since(`${hub.epoch}-2`)!.map((c) => c.seq)).toEqual([3, 4, 5])
  })
})

describe("dashboard views", () => {
  it("redact secrets as the tool log does and bound long texts", () => {
    const t = taskItem(emptyState(), task({ result: `done; api_key=abc123secret and sk-${"x".repeat(30)}`, prompt: "p".repeat(10_000) })).data as { result: string; prompt: string }
    expect(t.result).toBe("done; api_key=[redacted] and [redacted]")
    expect(t.prompt.length).toBeLessThan(4_100)
    expect(t.prompt).toContain("(+6000 chars")
    expect(envelopeItem(env({ text: "Bearer abcdefghijklmnopqrstuvwxyz" })).data).toMatchObject({ text: "[redacted]" })
    expect(clean({ a: ["token=zzz"] })).toEqual({ a: ["token=[redacted]"] })
  })

  it("an event yields the items it changed, read from the state", () => {
    const s = emptyState()
    const t = task()
    s.tasks.set(t.id, t)
    expect(itemsFor(s, { type: "task.updated", id: t.id, patch: { status: "running" } }).map((i) => i.id)).toEqual([t.id])
    expect(itemsFor(s, { type: "delivery.confirmed", batchId: "b" })).toEqual([])
    const nested = task({ id: "tsk_child1", parentTaskId: t.id, parentSessionId: "ses_child" })
    s.tasks.set(nested.id, nested)
    expect(taskItem(s, nested).data).toMatchObject({ root: "ses_root", parentTaskId: t.id })
  })
})

describe("dashboard HTTP", () => {
  it("refuses every request without the right token (401) and needs it in a header for actions", async () => {
    const calls: string[] = []
    const app = dashboardApp({ token: TOKEN, source: fixedSource(new Hub(), calls), assets })
    expect((await app.request("/")).status).toBe(401)
    expect((await app.request("/?token=wrong")).status).toBe(401)
    expect((await app.request(`/?token=${TOKEN}x`)).status).toBe(401)
    expect((await app.request("/api/snapshot")).status).toBe(401)
    expect((await app.request("/assets/app.js")).status).toBe(401)
    expect(await (await app.request("/")).text()).toContain("needs its token")
    // The token in the query is not enough for an action.
    const byQuery = await app.request(`/api/cancel?token=${TOKEN}`, { method: "POST", body: JSON.stringify({ id: "tsk_aaaa01" }) })
    expect(byQuery.status).toBe(401)
    expect(calls).toEqual([])
    const ok = await app.request("/api/cancel", { method: "POST", headers: { [TOKEN_HEADER]: TOKEN }, body: JSON.stringify({ id: "tsk_aaaa01" }) })
    expect(ok.status).toBe(200)
    expect(await ok.json()).toEqual({ ok: true, message: "cancelled" })
    const bad = await app.request("/api/answer", { method: "POST", headers: { [TOKEN_HEADER]: TOKEN }, body: JSON.stringify({ questionId: "q_aaaa01", answer: "  " }) })
    expect(bad.status).toBe(400)
    expect((await bad.json()) as { error: string }).toMatchObject({ error: expect.stringContaining("must not be empty") })
    expect(calls).toEqual(["cancel tsk_aaaa01"])
  })

  it("serves the page with the token on every module and the snapshot inline, escaped", async () => {
    const hub = new Hub()
    hub.publish(taskAt("tsk_aaaa01", "</script><script>alert(1)</script>"))
    const app = dashboardApp({ token: TOKEN, source: fixedSource(hub), assets })
    const res = await app.request(`/?token=${TOKEN}`)
    expect(res.status).toBe(200)
    const html = await res.text()
    expect(html).toContain(`"preact":"/vendor/preact.mjs?token=${TOKEN}"`)
    expect(html).toContain(`"/assets/lanes.js":"/assets/lanes.js?token=${TOKEN}"`)
    expect(html).not.toContain("</script><script>alert")
    expect(html).toContain(inlineJson("</script>").slice(1, -1))
    expect((await app.request(`/vendor/preact.mjs?token=${TOKEN}`)).headers.get("content-type")).toContain("javascript")
    expect((await app.request(`/assets/nothing.js?token=${TOKEN}`)).status).toBe(404)
  })

  it("the event stream resumes after Last-Event-ID without gaps, and sends a snapshot when it cannot", async () => {
    const hub = new Hub()
    hub.publish(taskAt("tsk_aaaa01"))
    const seen = hub.lastId
    hub.publish(taskAt("tsk_aaaa02"))
    hub.publish(taskAt("tsk_aaaa03"))
    const app = dashboardApp({ token: TOKEN, source: fixedSource(hub), assets })
    const raw = await readSse(await app.request(`/api/events?token=${TOKEN}`, { headers: { "last-event-id": seen } }), (t) => t.includes("tsk_aaaa03"))
    expect(raw.startsWith("retry: 1000\n\n")).toBe(true)
    const resumed = events(raw)
    expect(resumed.map((e) => [e.event, (e.data as Item).id])).toEqual([
      ["item", "tsk_aaaa02"],
      ["item", "tsk_aaaa03"],
    ])
    expect(resumed.at(-1)!.id).toBe(hub.lastId)

    const fresh = events(await readSse(await app.request(`/api/events?token=${TOKEN}`, { headers: { "last-event-id": "0000-5" } }), (t) => /event: snapshot\n[^]*\n\n/.test(t)))
    expect(fresh[0]).toMatchObject({ event: "snapshot", id: hub.lastId })
    expect((fresh[0]!.data as { items: Item[] }).items.map((i) => i.id).sort()).toEqual(["tsk_aaaa01", "tsk_aaaa02", "tsk_aaaa03"])

    // Live: a change published while the stream is open follows the backlog.
    const live = await app.request(`/api/events?token=${TOKEN}`, { headers: { "last-event-id": hub.lastId } })
    setTimeout(() => hub.publish(taskAt("tsk_aaaa04")), 20)
    const later = events(await readSse(live, (t) => t.includes("tsk_aaaa04")))
    expect(later.map((e) => (e.data as Item).id)).toEqual(["tsk_aaaa04"])
  })
})

describe("dashboard over a running NSO", () => {
  it("follows Runtime.write, and its actions go through the tools' code, recorded as the user's via the dashboard", async () => {
    const deps = fakeDeps()
    const rt = await Runtime.start(deps, tempDir(), Options.parse({ journal: { fsync: false } }))
    const source = liveSource(rt)
    onTestFinished(async () => {
      source.dispose()
      await rt.dispose()
    })
    const changes: string[] = []
    source.hub.subscribe((c) => changes.push(`${c.item.kind}:${c.item.id}:${(c.item.data as { status?: string }).status ?? ""}`))
    const t = task({ createdAt: deps.clock.now(), updatedAt: deps.clock.now(), lastActivityAt: deps.clock.now() })
    await rt.write({ type: "task.created", task: t })
    await rt.write({ type: "question.asked", question: { id: "q_dash01", taskId: t.id, from: "builder", sessionId: "ses_child", text: "Tabs?", urgency: "normal", options: [], askedAt: deps.clock.now(), status: "open" } })
    expect(changes).toEqual(["task:tsk_aaaa01:running", "question:q_dash01:open"])

    expect(await source.answer("q_dash01", "spaces")).toMatch(/^Answer to q_dash01 recorded/)
    expect(rt.state.questions.get("q_dash01")).toMatchObject({ status: "answered", answer: "spaces", answeredBy: DASHBOARD_USER })
    await expect(source.answer("q_dash01", "again")).rejects.toThrow(/already answered/)

    expect(await source.cancel(t.id)).toBe(`Cancelled ${t.id} (builder).`)
    expect(rt.state.tasks.get(t.id)).toMatchObject({ status: "cancelled", error: expect.stringContaining(DASHBOARD_USER) })
    expect(changes).toContain("task:tsk_aaaa01:cancelled")
    await expect(source.cancel(t.id)).rejects.toThrow(/already ended cancelled/)
    await expect(source.cancel("wf_nothing1")).rejects.toThrow(/No team run/)
  })
})

describe("the plugin's dashboard", () => {
  it("starts on 127.0.0.1, writes its URL for the user only, toasts it once, and removes the file when stopped", async () => {
    const deps = fakeDeps()
    const dir = tempDir()
    const rt = await Runtime.start(deps, dir, Options.parse({ journal: { fsync: false } }))
    onTestFinished(() => rt.dispose())
    const dash = await openDashboard(rt)
    expect(dash?.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/\?token=[A-Za-z0-9_-]{32}$/)
    const file = urlFile(dir, ".opencode/nso")
    expect(readFileSync(file, "utf8")).toBe(`${dash!.url}\n`)
    expect(statSync(file).mode & 0o777).toBe(0o600)
    expect(deps.fakeHost.toasts).toEqual([{ message: `NSO dashboard: ${dash!.url}`, variant: "info" }])
    expect((await fetch(dash!.url)).status).toBe(200)
    await dash!.close()
    expect(existsSync(file)).toBe(false)
  })

  it("is off with dashboard.enabled false, and a port in use is reported to the user, not fatal", async () => {
    const off = await Runtime.start(fakeDeps(), tempDir(), Options.parse({ journal: { fsync: false }, dashboard: { enabled: false } }))
    onTestFinished(() => off.dispose())
    expect(await openDashboard(off)).toBeUndefined()
    expect(existsSync(urlFile(off.projectDir, ".opencode/nso"))).toBe(false)

    const taken = createServer().listen(0, "127.0.0.1")
    await new Promise((r) => taken.once("listening", r))
    onTestFinished(() => void taken.close())
    const port = (taken.address() as { port: number }).port
    const rt = await Runtime.start(fakeDeps(), tempDir(), Options.parse({ journal: { fsync: false }, dashboard: { port } }))
    onTestFinished(() => rt.dispose())
    expect(await openDashboard(rt)).toBeUndefined()
    expect(rt.notices.unseen("ses_any")).toEqual([`NSO dashboard: could not start: port ${port} is in use (set dashboard.port to another port, or 0 for any free one).`])
  })
})

describe("the audit tail", () => {
  it("hands out each whole line once, across reads that cut a line or a character, and starts over when the file shrinks", async () => {
    const file = join(tempDir(), "messages.jsonl")
    const tail = new JsonlTail(fsPromises, file)
    expect(await tail.read()).toEqual([])
    const line = Buffer.from(`${JSON.stringify({ id: "a", text: "café ✓" })}\n`)
    const cut = line.indexOf(Buffer.from("✓")) + 1
    writeFileSync(file, line.subarray(0, cut))
    expect(await tail.read()).toEqual([])
    appendFileSync(file, Buffer.concat([line.subarray(cut), Buffer.from('{"id":"b"}\nnot json\n')]))
    expect(await tail.read()).toEqual([{ id: "a", text: "café ✓" }, { id: "b" }])
    expect(await tail.read()).toEqual([])
    writeFileSync(file, '{"id":"c"}\n')
    expect(await tail.read()).toEqual([{ id: "c" }])
  })
})
