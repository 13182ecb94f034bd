import { execFile } from "node:child_process"
import { existsSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import type { Browser, Page } from "playwright-core"
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest"
import { launchChromium } from "../../scripts/harness/chromium.js"
import { REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { allIdle, busySessions, journal, liveServer, newSession, prompt, until } from "./helpers.js"
import { remainingMs } from "./limits.js"

/**
 * The dashboard in a real browser (Debian's chromium, headless) against a real OpenCode server
 * with NSO and the scripted model. Screenshots of each step go to .tmp/dashboard/.
 */

const SHOTS = join(REPO, ".tmp", "dashboard")
const taskOf = (oc: RunningOpencode, title: string) =>
  journal(oc)
    .filter((r) => r.e.type === "task.created")
    .map((r) => r.e.task as { id: string; title: string })
    .find((t) => t.title === title)
const sessionOf = (oc: RunningOpencode, id: string) =>
  journal(oc)
    .filter((r) => r.e.type === "task.updated" && r.e.id === id)
    .map((r) => (r.e.patch as { sessionId?: string }).sessionId)
    .find(Boolean)

describe("the dashboard on a real server", () => {
  const srv = liveServer({ nso: { buffer: { pauseMs: 300 }, init: { sweepDelayMs: 50 }, tasks: { concurrency: 10 } } })
  const model = srv.model
  let oc: RunningOpencode
  let browser: Browser | undefined
  let page: Page
  let url: string

  beforeAll(async () => {
    oc = srv.oc
    mkdirSync(SHOTS, { recursive: true })
    // The plugin (and its dashboard) starts with the project, on the first request naming it.
    await newSession(oc, "wake")
    const file = join(oc.projectDir, ".opencode", "nso", "dashboard.url")
    url = await until(() => existsSync(file) && readFileSync(file, "utf8").trim(), "the dashboard URL in .opencode/nso/dashboard.url")
    browser = await launchChromium()
    page = await browser.newPage({ viewport: { width: 1440, height: 860 } })
    page.setDefaultTimeout(20_000)
    await page.goto(url)
    await page.locator('[data-live="live"]').waitFor({ timeout: 20_000 })
  })
  afterAll(async () => {
    await browser?.close()
  })
  afterEach(async () => {
    await allIdle(oc.client, "sessions idle before the next test")
    model.reset()
  })

  it("is on 127.0.0.1 only, `nso dashboard` prints its URL, and a wrong or missing token gets 401", async () => {
    const cli = await promisify(execFile)(process.execPath, [join(REPO, "dist", "scripts", "nso.js"), "dashboard", "--dir", oc.projectDir], { timeout: remainingMs() })
    expect(cli.stdout.trim()).toBe(`NSO dashboard (served by the running OpenCode server): ${url}`)
    const u = new URL(url)
    expect(u.hostname).toBe("127.0.0.1")
    expect(u.searchParams.get("token")).toMatch(/^[A-Za-z0-9_-]{32}$/)
    const wrong = new URL(url)
    wrong.searchParams.set("token", "not-the-token")
    expect((await fetch(wrong)).status).toBe(401)
    expect((await fetch(`${u.origin}/api/snapshot`)).status).toBe(401)
    // An action with the token only in the URL is refused: it needs the header.
    expect((await fetch(`${u.origin}/api/cancel?token=${u.searchParams.get("token")}`, { method: "POST", body: "{}" })).status).toBe(401)
    const p = await browser!.newPage()
    try {
      const res = await p.goto(wrong.href)
      expect(res?.status()).toBe(401)
      await p.screenshot({ path: join(SHOTS, "0-wrong-token.png") })
    } finally {
      await p.close()
    }
  })

  it("a delegated task shows under Running, its question under Needs you without a reload; answering on the page releases ask_user", async () => {
    model.script([
      { when: { user: "build the settings page" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "dash job: settings page", title: "settings page" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started the builder." }, times: 1 },
      { when: { user: "dash job: settings page" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Tabs or spaces for the settings page?", options: ["tabs", "spaces"], timeout_ms: 80_000 } }] }, times: 1 },
      { when: { toolResult: "The user answered: spaces" }, reply: { text: "Settings page built with spaces." }, times: 1 },
    ])
    const root = await newSession(oc, "dashboard")
    await prompt(oc, root, "build the settings page")
    const t = await until(() => taskOf(oc, "settings page"), "the delegated task in the journal")
    const row = page.locator(`[data-lane="running"] [data-task="${t.id}"]`)
    await row.waitFor({ state: "visible", timeout: remainingMs() })
    await page.screenshot({ path: join(SHOTS, "1-running.png") })
    expect(await row.textContent()).toContain("builder")

    const card = page.locator('[data-lane="needs"] [data-question]', { hasText: "Tabs or spaces for the settings page?" })
    await card.waitFor({ state: "visible", timeout: remainingMs() })
    await page.screenshot({ path: join(SHOTS, "2-needs-you.png") })
    await card.getByRole("button", { name: "spaces" }).click()

    await model.waitFor((r) => r.lastToolResult?.includes("The user answered: spaces") ?? false, { what: "the builder's ask_user returning the answer given on the page" })
    const done = page.locator(`[data-lane="done"] [data-task="${t.id}"][data-status="completed"]`)
    await done.waitFor({ state: "visible", timeout: remainingMs() })
    await done.locator("summary").click()
    await page.screenshot({ path: join(SHOTS, "3-done.png") })
    expect(await done.textContent()).toContain("Settings page built with spaces.")
    const answered = journal(oc).find((r) => r.e.type === "question.answered")
    expect(answered?.e).toMatchObject({ answer: "spaces", by: "user (dashboard)" })
    expect(await page.locator('[data-lane="needs"] [data-question]').count()).toBe(0)
  })

  it("the cancel button stops a task and its session", async () => {
    model.script([
      { when: { user: "start the long job" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "dash job: long migration", title: "long migration" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "dash job: long migration" }, reply: { text: "still migrating…", delayMs: 120_000 }, times: 1 },
    ])
    const root = await newSession(oc, "cancel")
    await prompt(oc, root, "start the long job")
    await model.waitFor((r) => r.lastUser.includes("dash job: long migration") && !r.lastToolResult, { what: "the builder's model request" })
    const t = await until(() => taskOf(oc, "long migration"), "the long task in the journal")
    const child = await until(() => sessionOf(oc, t.id), "the task's session id")
    await until(async () => (await busySessions(oc.client)).includes(child), "the task's session busy")
    const button = page.locator(`[data-lane="running"] [data-cancel="${t.id}"]`)
    await button.waitFor({ state: "visible", timeout: remainingMs() })
    await page.screenshot({ path: join(SHOTS, "4-before-cancel.png") })
    await button.click()
    await page.locator(`[data-lane="done"] [data-task="${t.id}"][data-status="cancelled"]`).waitFor({ state: "visible", timeout: remainingMs() })
    await page.screenshot({ path: join(SHOTS, "5-cancelled.png") })
    await until(async () => !(await busySessions(oc.client)).includes(child), "the task's session idle after the cancel", { saw: async () => (await busySessions(oc.client)).join(", ") })
    const ended = journal(oc).filter((r) => r.e.type === "task.updated" && r.e.id === t.id).at(-1)
    expect(ended?.e.patch).toMatchObject({ status: "cancelled", error: expect.stringContaining("user (dashboard)") })
  })
})
