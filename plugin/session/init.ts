import { join } from "node:path"
import type { Deps } from "../deps.js"
import type { InitOptions } from "../options.js"
import { ensureMemoryFiles, memoryBlock } from "./memory.js"
import type { SessionRegistry } from "./registry.js"

export type InitTrigger = "session.created" | "chat.message" | "system.transform" | "tool.execute" | "sweep"

export interface InitStep {
  step: string
  ms: number
  ok: boolean
  detail?: string
}

export interface InitResult {
  sessionId: string
  trigger: InitTrigger
  root: boolean
  ok: boolean
  steps: InitStep[]
  /** Memory files created from templates by this init. */
  created: string[]
  truncated: string[]
}

export interface SessionInitPorts {
  /** The isolation header for a child session NSO created, or undefined for any other child. */
  childHeader(sessionId: string): Promise<string | undefined>
  /** Called once per root session after init: hand it what NSO holds for it. */
  onRootReady(sessionId: string): Promise<void>
  /** Durable record that the session was initialised. */
  record(sessionId: string, root: boolean): Promise<void>
  /** The fixed explanation of NSO's headers for the Oracle. */
  headerGuide: string
}

/** How long a loaded memory block is reused before the files are read again (ms). */
const MEMORY_FRESH_MS = 2_000

/**
 * Session init that runs exactly once per session and process, whichever trigger comes first.
 * It never throws: a failure is logged, written to init.log, toasted once, and the session goes
 * on without NSO's additions.
 */
export class SessionInit {
  private runs = new Map<string, Promise<InitResult>>()
  private system = new Map<string, string[]>()
  private memory: { at: number; text: string; truncated: string[] } | undefined
  private memoryLoad: Promise<void> | undefined
  private toastedFailure = false

  constructor(
    private readonly deps: Pick<Deps, "fs" | "clock" | "log" | "host" | "timers">,
    private readonly opts: { projectDir: string; stateDir: string; init: InitOptions },
    private readonly registry: SessionRegistry,
    private readonly ports: SessionInitPorts,
  ) {}

  get logPath(): string {
    return join(this.opts.projectDir, this.opts.stateDir, "init.log")
  }

  /** Runs init for the session if it has not run yet; always resolves. */
  ensure(sessionId: string, trigger: InitTrigger): Promise<InitResult> {
    let run = this.runs.get(sessionId)
    if (!run) {
      run = this.run(sessionId, trigger)
      this.runs.set(sessionId, run)
    }
    return run
  }

  /** What to add to this session's system prompt (empty before init or after a failed one). */
  async systemFor(sessionId: string): Promise<string[]> {
    await this.ensure(sessionId, "system.transform")
    const extra = this.system.get(sessionId)
    if (!extra) return []
    if (this.registry.get(sessionId).parentId) {
      // Looked up on every call: the child may be created before NSO has recorded its task.
      const header = await this.ports.childHeader(sessionId)
      return header ? [header] : []
    }
    // Root sessions: the memory block stays fresh while agents update the files.
    await this.freshMemory().catch((err) => this.deps.log.log("warn", "memory refresh failed", { error: String(err) }))
    return this.memory ? [...extra, this.memory.text] : extra
  }

  /** Initialises sessions that existed before the plugin started (idle, recently used). */
  async sweep(windowMs = 24 * 3600_000): Promise<number> {
    const now = this.deps.clock.now()
    const sessions = await this.deps.host.sessions()
    let n = 0
    for (const s of sessions) {
      this.registry.learn(s.id, { parentId: s.parentId, title: s.title })
      if (this.runs.has(s.id) || (s.updatedAt !== undefined && now - s.updatedAt > windowMs)) continue
      await this.ensure(s.id, "sweep")
      n++
    }
    return n
  }

  forget(sessionId: string): void {
    this.runs.delete(sessionId)
    this.system.delete(sessionId)
  }

  private async freshMemory(): Promise<void> {
    if (this.memory && this.deps.clock.now() - this.memory.at < MEMORY_FRESH_MS) return
    if (!this.memoryLoad) {
      this.memoryLoad = (async () => {
        const { files } = await ensureMemoryFiles(this.deps, this.opts.projectDir, this.opts.init.contextDir, false)
        const block = memoryBlock(files, this.opts.init.budgetChars)
        this.memory = { at: this.deps.clock.now(), text: block.text, truncated: block.truncated }
      })().finally(() => {
        this.memoryLoad = undefined
      })
    }
    await this.memoryLoad
  }

  private async run(sessionId: string, trigger: InitTrigger): Promise<InitResult> {
    const steps: InitStep[] = []
    const result: InitResult = { sessionId, trigger, root: true, ok: true, steps, created: [], truncated: [] }
    const step = async <T>(name: string, fn: () => Promise<T>, detail?: (v: T) => string | undefined): Promise<T> => {
      const t0 = this.deps.clock.monotonic()
      try {
        const v = await fn()
        steps.push({ step: name, ms: round(this.deps.clock.monotonic() - t0), ok: true, detail: detail?.(v) })
        return v
      } catch (err) {
        steps.push({ step: name, ms: round(this.deps.clock.monotonic() - t0), ok: false, detail: String(err) })
        throw err
      }
    }
    try {
      const info = await step("resolve-session", () => this.registry.resolve(sessionId), (s) => (s.parentId ? `child of ${s.parentId}` : "root"))
      result.root = !info.parentId
      if (!result.root) {
        await step("isolation-header", () => this.ports.childHeader(sessionId), (h) => (h ? "found" : "no NSO task (yet)"))
        this.system.set(sessionId, [])
      } else {
        const { files, missing } = await step(
          "memory-files",
          () => ensureMemoryFiles(this.deps, this.opts.projectDir, this.opts.init.contextDir, this.opts.init.createMissing),
          (r) => `${r.files.length} present${r.files.some((f) => f.created) ? `, created ${r.files.filter((f) => f.created).length}` : ""}${r.missing.length ? `, missing ${r.missing.length}` : ""}`,
        )
        result.created = files.filter((f) => f.created).map((f) => f.path)
        const block = await step("load-memory", async () => memoryBlock(files, this.opts.init.budgetChars), (b) => `${b.text.length} chars${b.truncated.length ? `, truncated ${b.truncated.join(", ")}` : ""}`)
        result.truncated = block.truncated
        this.memory = { at: this.deps.clock.now(), text: block.text, truncated: block.truncated }
        await step("verify", async () => {
          const absent = files.filter((f) => !block.text.includes(`## ${f.path}\n`)).map((f) => f.path)
          if (absent.length || missing.length) throw new Error(`not loaded: ${[...absent, ...missing].join(", ")}`)
          return files.length
        }, (n) => `${n} files in the system prompt`)
        const notes = [this.ports.headerGuide]
        if (result.created.length) {
          notes.push(
            `NSO note: these project memory files were missing and have been created from templates: ${result.created.join(", ")}. When it fits, ask the user to fill them in.`,
          )
          void this.deps.host.toast(`NSO created missing memory files: ${result.created.join(", ")}`, "warning").catch(() => {})
        }
        this.system.set(sessionId, notes)
        await step("pending-for-session", () => this.ports.onRootReady(sessionId))
      }
      await step("journal", () => this.ports.record(sessionId, result.root))
    } catch (err) {
      result.ok = false
      this.deps.log.log("error", "session init failed; the session goes on without NSO's context", { sessionId, error: String(err) })
      if (!this.toastedFailure) {
        this.toastedFailure = true
        void this.deps.host.toast(`NSO session init failed: ${String(err)} (see ${this.logPath})`, "error").catch(() => {})
      }
    }
    await this.writeLog(result)
    return result
  }

  private async writeLog(r: InitResult): Promise<void> {
    const line = JSON.stringify({ time: new Date(this.deps.clock.now()).toISOString(), session: r.sessionId, trigger: r.trigger, root: r.root, ok: r.ok, created: r.created, truncated: r.truncated, steps: r.steps })
    try {
      await this.deps.fs.mkdir(join(this.opts.projectDir, this.opts.stateDir), { recursive: true })
      await this.deps.fs.appendFile(this.logPath, line + "\n")
    } catch (err) {
      this.deps.log.log("error", "cannot write init.log", { error: String(err) })
    }
  }
}

const round = (ms: number) => Math.round(ms * 100) / 100
