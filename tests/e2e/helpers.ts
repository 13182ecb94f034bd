import type { OpencodeClient } from "@opencode-ai/sdk"
import { afterAll, afterEach, beforeAll, onTestFinished } from "vitest"
import { MockModel } from "../../scripts/harness/mock-model.js"
import { join } from "node:path"
import { readJsonl, startOpencode, type OpencodeOptions, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { LIMITS, remainingMs } from "./limits.js"
import type { TaskUsage } from "../../plugin/protocol.js"

/**
 * Polls a condition on state another process changes, until shortly before the running test's
 * limit (or `timeoutMs` if shorter). The error names what it waited for and, if `saw` is given,
 * what it saw last ("timed out after 30.0 s waiting for twenty completions; saw 14").
 */
export async function until<T>(
  fn: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  opts: { timeoutMs?: number; saw?: () => string | Promise<string> } = {},
): Promise<T> {
  const limit = Math.min(opts.timeoutMs ?? Infinity, remainingMs())
  const end = Date.now() + limit
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) {
      const saw = opts.saw ? `; saw ${await Promise.resolve(opts.saw()).catch((e: unknown) => `(could not tell: ${String(e)})`)}` : ""
      throw new Error(`timed out after ${(limit / 1000).toFixed(1)} s waiting for ${what}${saw}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Sessions OpenCode reports busy. */
export async function busySessions(client: OpencodeClient): Promise<string[]> {
  const r = await client.session.status()
  return Object.entries(r.data ?? {})
    .filter(([, s]) => (s as { type: string }).type !== "idle")
    .map(([id]) => id)
}

/** Waits until OpenCode reports no session busy; names the busy ones if it gives up. */
export async function allIdle(client: OpencodeClient, what = "every session idle"): Promise<void> {
  let busy: string[] = []
  await until(async () => (busy = await busySessions(client)).length === 0, what, { saw: () => `${busy.length} busy: ${busy.join(", ")}` })
}

/** Text of every message in a session, with the NSO metadata of each part. */
export async function transcript(client: OpencodeClient, id: string) {
  const r = await client.session.messages({ path: { id } })
  return (r.data ?? []).map((m) => ({
    role: m.info.role,
    text: m.parts.filter((p) => p.type === "text").map((p) => (p as { text: string }).text).join("\n"),
    nso: m.parts.map((p) => (p as { metadata?: { nso?: { source: string; from: string; kind?: string; ids: string[] } } }).metadata?.nso).find(Boolean),
    /** Every text part is synthetic: OpenCode's TUI does not show the message. */
    hidden: m.parts.some((p) => p.type === "text") && m.parts.filter((p) => p.type === "text").every((p) => (p as { synthetic?: boolean }).synthetic === true),
  }))
}

/** A scripted model whose waits are bounded by the running test's limit. */
export function testModel(): MockModel {
  const model = new MockModel()
  model.defaultWaitMs = remainingMs
  return model
}

/**
 * One real server and one scripted model shared by a describe block: started before its tests,
 * stopped (and its temp folder removed) after, the model's script cleared after each test.
 */
export function liveServer(opts: Omit<OpencodeOptions, "modelUrl">): { model: MockModel; readonly oc: RunningOpencode } {
  const model = testModel()
  let oc: RunningOpencode | undefined
  beforeAll(async () => {
    await model.start()
    oc = await startOpencode({ modelUrl: model.url, startTimeoutMs: LIMITS.serverStartMs, ...opts })
  })
  afterAll(async () => {
    await oc?.dispose()
    await model.stop()
  })
  afterEach(() => model.reset())
  return {
    model,
    get oc() {
      if (!oc) throw new Error("the server is not started yet (use it inside a test)")
      return oc
    },
  }
}

/**
 * For a test that starts its own servers (restarts): everything started through it is stopped
 * and its temp folders removed when the test ends — passed, failed or timed out. A start that
 * finishes after the test gave up is stopped at once.
 */
export function ownServers(): { model: MockModel; start(opts: Omit<OpencodeOptions, "modelUrl">): Promise<RunningOpencode> } {
  const model = testModel()
  const started: RunningOpencode[] = []
  let over = false
  let modelUp: Promise<unknown> | undefined
  onTestFinished(async () => {
    over = true
    for (const oc of started.reverse()) await oc.dispose().catch(() => {})
    await model.stop()
  })
  return {
    model,
    async start(opts) {
      modelUp ??= model.start()
      await modelUp
      const oc = await startOpencode({ modelUrl: model.url, startTimeoutMs: LIMITS.serverStartMs, ...opts })
      if (over) {
        await oc.dispose()
        throw new Error("the test ended while its server was starting")
      }
      started.push(oc)
      return oc
    },
  }
}

/** One journal record as the tests read it. */
export type Rec = { t: number; e: { type: string; [k: string]: unknown } }

/** The server's journal as it is on disk now. */
export const journal = (oc: RunningOpencode) => readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as Rec[]

/** A task as the journal has it now: its creation with every patch applied. */
export function taskNow(oc: RunningOpencode, id: string): Record<string, unknown> & { status?: string; sessionId?: string; usage?: TaskUsage; retries?: unknown[]; error?: string; result?: string } {
  let t: Record<string, unknown> = {}
  for (const r of journal(oc)) {
    if (r.e.type === "task.created" && (r.e.task as { id: string }).id === id) t = { ...(r.e.task as object) }
    if (r.e.type === "task.updated" && r.e.id === id) t = { ...t, ...(r.e.patch as object) }
  }
  return t
}

/** The user writes to the Oracle in a session (waits for the Oracle's reply). */
export async function prompt(oc: RunningOpencode, sessionId: string, text: string): Promise<void> {
  await oc.client.session.prompt({ path: { id: sessionId }, body: { agent: "oracle", parts: [{ type: "text", text }] } })
}

/** A new root session. */
export const newSession = async (oc: RunningOpencode, title: string) => (await oc.client.session.create({ body: { title } })).data!.id
