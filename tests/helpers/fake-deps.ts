import * as fs from "node:fs/promises"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import type { AssistantOutcome, Deps, Host, HostSession, Logger, LogLevel, TimerHandle } from "../../plugin/deps.js"
import { appendSync, systemProcesses } from "../../plugin/deps.js"
import { IdPrefix, type Envelope } from "../../plugin/protocol.js"

/** A clock and timers that move only when the test says so. */
export class FakeTime {
  now = 1_700_000_000_000
  private timers = new Map<number, { at: number; fn: () => void; every?: number }>()
  private next = 1

  clock = { now: () => this.now, monotonic: () => this.now }
  timers_ = {
    setTimeout: (fn: () => void, ms: number): TimerHandle => this.add(fn, ms),
    clearTimeout: (h: TimerHandle) => void this.timers.delete((h as { id: number }).id),
    setInterval: (fn: () => void, ms: number): TimerHandle => this.add(fn, ms, ms),
    clearInterval: (h: TimerHandle) => void this.timers.delete((h as { id: number }).id),
  }

  private add(fn: () => void, ms: number, every?: number): TimerHandle {
    const id = this.next++
    this.timers.set(id, { at: this.now + Math.max(0, ms), fn, every })
    return { id }
  }

  get pending(): number {
    return this.timers.size
  }

  /** Moves time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.now + ms
    for (;;) {
      let dueId: number | undefined
      let due: { at: number; fn: () => void; every?: number } | undefined
      for (const [id, t] of this.timers) if (t.at <= end && (!due || t.at < due.at)) [dueId, due] = [id, t]
      if (!due || dueId === undefined) break
      this.now = Math.max(this.now, due.at)
      if (due.every) due.at += due.every
      else this.timers.delete(dueId)
      due.fn()
    }
    this.now = end
  }
}

export class MemoryLogger implements Logger {
  lines: { level: LogLevel; message: string; extra?: Record<string, unknown> }[] = []
  log(level: LogLevel, message: string, extra?: Record<string, unknown>): void {
    this.lines.push({ level, message, extra })
  }
}

/** Records what NSO asks of OpenCode. */
export class FakeHost implements Host {
  injections: { sessionId: string; text: string; meta: Record<string, unknown>; noReply: boolean }[] = []
  toasts: { message: string; variant: string }[] = []
  known = new Map<string, HostSession>()
  failInject = false
  async inject(sessionId: string, m: { text: string; meta: Record<string, unknown>; noReply: boolean }) {
    if (this.failInject) throw new Error("server gone")
    this.injections.push({ sessionId, ...m })
  }
  async toast(message: string, variant: string) {
    this.toasts.push({ message, variant })
  }
  async session(id: string) {
    return this.known.get(id)
  }
  async sessions() {
    return [...this.known.values()]
  }
  created: { id: string; parentId: string; title: string }[] = []
  prompts: { sessionId: string; agent: string; text: string; delegates?: boolean }[] = []
  aborted: string[] = []
  /** What `lastAssistant` answers per session; tests set it to simulate a child finishing. */
  outcomes = new Map<string, AssistantOutcome>()
  busy = new Set<string>()
  async createSession(input: { parentId: string; title: string }) {
    const id = `ses_child${this.created.length + 1}`
    this.created.push({ id, ...input })
    this.known.set(id, { id, parentId: input.parentId, title: input.title })
    return id
  }
  async prompt(sessionId: string, input: { agent: string; text: string; delegates?: boolean }) {
    this.prompts.push({ sessionId, ...input })
    this.busy.add(sessionId)
  }
  async abort(sessionId: string) {
    this.aborted.push(sessionId)
    this.busy.delete(sessionId)
  }
  async lastAssistant(sessionId: string) {
    return this.outcomes.get(sessionId)
  }
  async busySessions() {
    return new Set(this.busy)
  }
  async injectedIds(sessionId: string) {
    const ids = new Set<string>()
    for (const i of this.injections) if (i.sessionId === sessionId) for (const id of (i.meta.ids as string[]) ?? []) ids.add(id)
    return ids
  }
}

// Shared by every fake: two journals opened in one test must not get the same writer id.
let idCounter = 0

export function fakeDeps(overrides: Partial<Deps> = {}): Deps & { time: FakeTime; logger: MemoryLogger; fakeHost: FakeHost } {
  const time = new FakeTime()
  const logger = new MemoryLogger()
  const fakeHost = new FakeHost()
  return {
    clock: time.clock,
    timers: time.timers_,
    ids: { id: (p) => `${p}_${(++idCounter).toString(36).padStart(6, "0")}` },
    fs,
    // Tests write into scratch folders: the real synchronous append is what the signal path needs.
    appendSync,
    // Real processes: only the job tests start any, and they pass their own fake.
    proc: systemProcesses,
    log: logger,
    host: fakeHost,
    time,
    logger,
    fakeHost,
    ...overrides,
  }
}

export function tempDir(prefix = "nso-test-"): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

let envN = 0
/** A valid envelope with sensible defaults. */
export function env(over: Partial<Envelope> = {}): Envelope {
  envN++
  return {
    id: `${IdPrefix.message}_${envN.toString(36).padStart(6, "0")}`,
    time: 1_700_000_000_000,
    source: "agent",
    from: "builder",
    to: "oracle",
    kind: "status",
    priority: "medium",
    hops: 0,
    text: `message ${envN}`,
    ...over,
  }
}
