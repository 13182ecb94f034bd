import { existsSync, mkdirSync } from "node:fs"
import { join } from "node:path"
import type { Browser, Page } from "playwright-core"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import { liveSource } from "../../plugin/dashboard/live.js"
import { replaySource } from "../../plugin/dashboard/replay.js"
import { startDashboard } from "../../plugin/dashboard/server.js"
import { createDeps } from "../../plugin/deps.js"
import { launchChromium } from "../../scripts/harness/chromium.js"
import { detachedRuntime, sampleTask } from "../../scripts/harness/detached-runtime.js"
import { REPO } from "../../scripts/harness/opencode.js"
import { until } from "./helpers.js"
import { remainingMs } from "./limits.js"

/**
 * The page's views and its live feed in a real browser (Debian's chromium), over NSO's runtime
 * without OpenCode: events are written through `Runtime.write` as the plugin does. What needs a
 * real OpenCode server (answering, cancelling) is in dashboard.test.ts.
 */

const SHOTS = join(REPO, ".tmp", "dashboard")

describe("the dashboard page", () => {
  let browser: Browser

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true })
    browser = await launchChromium()
  })
  afterAll(async () => {
    await browser?.close()
  })

  async function opened(url: string): Promise<Page> {
    const page = await browser.newPage({ viewport: { width: 1440, height: 860 } })
    onTestFinished(() => page.close())
    page.setDefaultTimeout(Math.min(20_000, remainingMs()))
    await page.goto(url)
    await page.locator('[data-live="live"]').waitFor()
    return page
  }

  it("after the server went away and came back, the page shows what happened meanwhile without a reload", async () => {
    const { rt, close } = await detachedRuntime()
    const source = liveSource(rt)
    let dash = await startDashboard(source, { port: 0 })
    onTestFinished(async () => {
      await dash.close()
      source.dispose()
      await close()
    })
    const page = await opened(dash.url)
    const a = sampleTask({ title: "before the break" })
    await rt.write({ type: "task.created", task: a })
    await page.locator(`[data-lane="running"] [data-task="${a.id}"]`).waitFor()

    await dash.close()
    await page.locator('[data-live="reconnecting"]').waitFor()
    const b = sampleTask({ title: "while away 1" })
    const c = sampleTask({ title: "while away 2" })
    await rt.write({ type: "task.created", task: b })
    await rt.write({ type: "task.created", task: c })
    await rt.write({ type: "task.updated", id: a.id, patch: { status: "completed", result: "done while away" } })
    // Same port and token: the page's EventSource reconnects by itself with Last-Event-ID.
    dash = await startDashboard(source, { port: dash.port, token: dash.token })
    for (const t of [b, c]) await page.locator(`[data-lane="running"] [data-task="${t.id}"]`).waitFor()
    await page.locator(`[data-lane="done"] [data-task="${a.id}"][data-status="completed"]`).waitFor()
    await page.locator('[data-live="live"]').waitFor()
    // Resumed from the last event the page had, not replaced by a snapshot.
    expect(await page.locator("[data-live]").getAttribute("data-snapshots")).toBe("0")

    // A new server (a restart: another feed) cannot resume: the page gets a snapshot and is whole.
    await dash.close()
    const d = sampleTask({ title: "after the restart" })
    await rt.write({ type: "task.created", task: d })
    const fresh = liveSource(rt)
    const restarted = await startDashboard(fresh, { port: dash.port, token: dash.token })
    onTestFinished(async () => {
      await restarted.close()
      fresh.dispose()
    })
    await page.locator(`[data-lane="running"] [data-task="${d.id}"]`).waitFor()
    expect(await page.locator("[data-live]").getAttribute("data-snapshots")).toBe("1")
    expect(await page.locator('[data-lane="running"] [data-task]').count()).toBe(3)
  })

  it("shows a team run's members and who messaged whom as SVG, filters messages, redacts secrets, cancels the run", async () => {
    const { rt, dir, close } = await detachedRuntime()
    const source = liveSource(rt)
    const dash = await startDashboard(source, { port: 0 })
    onTestFinished(async () => {
      await dash.close()
      source.dispose()
      await close()
    })
    const now = Date.now()
    const wf = "wf_pagetest1"
    await rt.write({ type: "workflow.created", workflow: { id: wf, team: "review", pattern: "sequential", goal: "Review and harden the login flow", title: "login review", parentSessionId: "ses_root0", depth: 1, phase: "parallel_execution", startedBy: "oracle", handoffs: [], createdAt: now, updatedAt: now } })
    const scout = sampleTask({ agent: "scout", title: "map the login flow", workflow: { id: wf, step: "member:0", role: "explorer", report: "workflow" } })
    const builder = sampleTask({ agent: "builder", title: "harden it", workflow: { id: wf, step: "member:1", role: "implementer", report: "workflow" } })
    const janitor = sampleTask({ agent: "janitor", title: "tidy up", status: "queued", workflow: { id: wf, step: "member:2", role: "cleaner", report: "workflow" } })
    for (const t of [scout, builder, janitor]) await rt.write({ type: "task.created", task: t })
    await rt.write({ type: "task.updated", id: scout.id, patch: { status: "completed", result: `mapped; the key is api_key=hunter22 and sk-${"a".repeat(24)}` } })
    await rt.write({ type: "workflow.handoff", id: wf, handoff: { from: scout.id, to: builder.id, fromAgent: "scout", toAgent: "builder", artifacts: ["notes/login.md"], at: now } })
    const said: [string, string, "request" | "reply" | "finding", string][] = [
      ["builder", "scout", "request", "Where is the CSRF token checked?"],
      ["scout", "builder", "reply", "In middleware/csrf.ts."],
      ["builder", "janitor", "finding", "Two unused helpers in auth/util.ts"],
      ["janitor", "builder", "request", "May I delete auth/old.ts?"],
    ]
    let i = 0
    for (const [from, to, kind, text] of said)
      await rt.write({ type: "message.buffered", envelope: { id: `msg_page${i++}xx`, time: now + i, source: "agent", from, to, kind, priority: "medium", workflowId: wf, hops: 0, text } })
    const page = await opened(dash.url)

    await page.click('[data-tab="teams"]')
    const run = page.locator(`[data-run="${wf}"]`)
    await run.waitFor()
    for (const a of ["scout", "builder", "janitor"]) await run.locator(`svg [data-node="${a}"]`).waitFor()
    for (const e of ["builder→scout", "scout→builder", "builder→janitor", "janitor→builder"]) expect(await run.locator(`svg [data-edge="${e}"]`).count(), e).toBe(1)
    expect(await run.locator('svg [data-handoff="scout→builder"]').count()).toBe(1)
    expect(await run.locator("table.members tbody tr").count()).toBe(3)
    await page.screenshot({ path: join(SHOTS, "6-team-run.png") })

    await page.click('[data-tab="messages"]')
    await page.locator("[data-message]").first().waitFor()
    expect(await page.locator("[data-message]").count()).toBe(4)
    await page.selectOption('select[name="from"]', "janitor")
    await until(async () => (await page.locator("[data-message]").count()) === 1, "the from filter to leave one message")
    expect(await page.locator("[data-message]").textContent()).toContain("May I delete auth/old.ts?")
    await page.selectOption('select[name="from"]', "")
    await page.fill('input[name="text"]', "csrf")
    await until(async () => (await page.locator("[data-message]").count()) === 2, "the text filter to leave two messages")

    await page.click('[data-tab="lanes"]')
    const done = page.locator(`[data-lane="done"] [data-task="${scout.id}"]`)
    await done.locator("summary").click()
    const text = (await done.textContent()) ?? ""
    expect(text).toContain("api_key=[redacted]")
    expect(text).not.toContain("hunter22")
    expect(await page.content()).not.toContain("a".repeat(24))

    // The telemetry view reads the invocation line the recorder wrote when the scout ended.
    await until(() => existsSync(join(dir, ".opencode/nso/telemetry/agent_invocations.jsonl")), "the scout's invocation line")
    await page.click('[data-tab="telemetry"]')
    await page.locator('[data-agent="scout"]').waitFor({ timeout: Math.min(25_000, remainingMs()) })
    expect(await page.locator('[data-agent="scout"]').textContent()).toContain("100%")
    expect(await page.locator('[data-agent="scout"] svg.spark circle').count()).toBe(1)

    // Cancel run: its members still going end, through the team runner's cancel; the scout had
    // finished, so the run ends partial, marked as such under Done.
    await page.click('[data-tab="lanes"]')
    await page.locator(`[data-lane="running"] [data-cancel="${wf}"]`).click()
    const ended = page.locator(`[data-lane="done"] [data-run="${wf}"][data-phase="partial"]`)
    await ended.waitFor()
    expect(await ended.locator(".mark").textContent()).toBe("◐")
    for (const t of [builder, janitor]) await page.locator(`[data-lane="done"] [data-task="${t.id}"][data-status="cancelled"]`).waitFor()
    expect(rt.state.workflows.get(wf)?.phase).toBe("partial")
  })

  it("served from the journal (no server running), it says it is read-only and offers no actions", async () => {
    // A runtime writes the journal as a server would have; the view reads only the files.
    const { rt, dir, close } = await detachedRuntime()
    const t = sampleTask({ title: "left running" })
    await rt.write({ type: "task.created", task: t })
    await rt.write({ type: "question.asked", question: { id: "q_readonly1", taskId: t.id, from: "builder", sessionId: "ses_x", text: "Which database?", urgency: "normal", options: ["postgres", "sqlite"], askedAt: Date.now(), status: "open" } })
    const source = await replaySource(createDeps(), dir, ".opencode/nso")
    const dash = await startDashboard(source, { port: 0 })
    onTestFinished(async () => {
      await dash.close()
      source.dispose()
      await close()
    })
    const page = await opened(dash.url)
    await page.locator('[data-testid="read-only"]').waitFor()
    const card = page.locator('[data-question="q_readonly1"]')
    await card.waitFor()
    expect(await card.textContent()).toContain("nso answer q_readonly1")
    expect(await card.locator("button").count()).toBe(0)
    expect(await page.locator(`[data-cancel="${t.id}"]`).count()).toBe(0)
    // It follows the journal: a task written after the page opened shows up.
    const later = sampleTask({ title: "written later" })
    await rt.write({ type: "task.created", task: later })
    await page.locator(`[data-lane="running"] [data-task="${later.id}"]`).waitFor()
    await page.screenshot({ path: join(SHOTS, "7-read-only.png") })
  })
})
