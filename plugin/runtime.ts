import { appendFileSync, mkdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import type { Deps, LogLevel, Logger } from "./deps.js"
import { Deliverer } from "./buffer/delivery.js"
import { header } from "./buffer/format.js"
import { Journal, type ReplayReport } from "./journal/journal.js"
import { nsoReducer, type LiveState } from "./journal/state.js"
import type { Options } from "./options.js"
import { TEMPLATES_DIR } from "./paths.js"
import { TERMINAL_TASK_STATUSES, type JournalEvent } from "./protocol.js"
import { classify, type Classification, type IncomingPart } from "./router/classify.js"
import { createIntentMonitor, type IntentMonitor, type IntentSuggestion } from "./router/intent.js"
import { route } from "./router/route.js"
import { Outbox } from "./router/outbox.js"
import { appendProgress, sessionSummary } from "./session/close.js"
import { SessionInit } from "./session/init.js"
import { SessionRegistry } from "./session/registry.js"
import { ToolLog } from "./telemetry/tool-log.js"
import { JsonlLog } from "./telemetry/jsonl.js"
import { toolVerdict, type Profile, type ToolEffect } from "./agents/profiles.js"
import { loadProfiles, promptSuffix, type LoadedProfiles } from "./agents/load.js"
import { KnowledgeIndex } from "./agents/knowledge.js"
import { CONFIG_DIR } from "./paths.js"
import { QuestionManager } from "./questions/manager.js"
import { TaskManager, type AgentInfo } from "./tasks/manager.js"
import { inScope, projectPath } from "./tasks/scope.js"
import type { Task } from "./protocol.js"

/**
 * NSO's core, assembled: the journal and the state it replays, the session registry, delivery,
 * init and the tool log. Hooks call these methods and nothing else; nothing here knows
 * OpenCode's shapes.
 */
export class Runtime {
  readonly registry: SessionRegistry
  readonly deliverer: Deliverer
  readonly init: SessionInit
  readonly toolLog: ToolLog
  /** How each message was tagged (source, sender): `.opencode/nso/messages.jsonl`. */
  readonly tags: JsonlLog
  readonly intents: IntentMonitor
  readonly tasks: TaskManager
  readonly questions: QuestionManager
  readonly outbox: Outbox
  readonly profiles: Map<string, Profile>
  readonly profileOrigins: LoadedProfiles["origins"]
  private knowledgeIndex: Promise<KnowledgeIndex> | undefined
  private suggestions = new Map<string, IntentSuggestion>()
  private activitySweep: ReturnType<Deps["timers"]["setInterval"]> | undefined
  /** When this runtime started (ms since epoch). */
  readonly startedAt: number
  private closed = new Set<string>()
  private disposed = false

  private constructor(
    readonly deps: Deps,
    readonly projectDir: string,
    readonly options: Options,
    readonly journal: Journal<LiveState>,
    readonly state: LiveState,
    readonly replay: ReplayReport,
    loaded: LoadedProfiles,
  ) {
    this.startedAt = deps.clock.now()
    this.profiles = loaded.profiles
    this.profileOrigins = loaded.origins
    this.registry = new SessionRegistry(deps)
    this.intents = createIntentMonitor(options.router.intents)
    this.deliverer = new Deliverer(deps, options.buffer, this.registry, {
      write: (e) => this.write(e),
      runningTasks: (sid) => this.runningTasks(sid),
    })
    const headerGuide = readTemplate("nso_headers.md")
    const isolation = readTemplate("task_isolation_header.md")
    const renderIsolation = (task: Task) =>
      isolation
        .replaceAll("{{taskId}}", task.id)
        .replaceAll("{{agent}}", task.agent)
        .replaceAll("{{scope}}", task.scope.length ? task.scope.join(", ") : "(no write restriction)")
        .replaceAll("{{contextFile}}", join(options.stateDir, "tasks", task.id, "context.md"))
    this.outbox = new Outbox(deps, { tasks: state.tasks, push: (env) => this.deliverer.push(env) })
    this.tasks = new TaskManager(deps, options.tasks, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      agents: () => this.agents(),
      isolationHeader: renderIsolation,
      projectDir,
      stateDir: options.stateDir,
    })
    this.questions = new QuestionManager(deps, options.tasks.questionTimeoutMs, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      inboxOf: (taskId) => this.outbox.recipient({ kind: "question", taskId }),
      withdraw: (sid, qid) => this.deliverer.withdraw(sid, qid),
      tasks: this.tasks,
    })
    this.init = new SessionInit(deps, { projectDir, stateDir: options.stateDir, init: options.init }, this.registry, {
      headerGuide,
      childHeader: async (sid) => {
        const task = this.tasks.bySessionId(sid)
        return task ? renderIsolation(task) : undefined
      },
      onRootReady: async (sid) => {
        await this.questions.remind(sid, this.startedAt, new Set(this.deliverer.pending(sid).map((e) => e.questionId)))
        this.deliverer.poke(sid)
      },
      record: (sid, root) => (this.state.initialized.has(sid) ? Promise.resolve() : this.write({ type: "session.initialized", sessionId: sid, root })),
    })
    this.toolLog = new ToolLog(deps, ToolLog.at(projectDir, options.stateDir))
    this.tags = new JsonlLog(deps, join(projectDir, options.stateDir, "messages.jsonl"))
  }

  static async start(deps: Deps, projectDir: string, options: Options): Promise<Runtime> {
    const dir = join(projectDir, options.stateDir)
    const { journal, state, report } = await Journal.open(deps, nsoReducer, {
      dir,
      maxBytes: options.journal.maxBytes,
      fsync: options.journal.fsync,
    })
    if (report.corrupt || report.torn)
      deps.log.log("warn", "journal had damaged lines; they were skipped", { corrupt: report.corrupt, torn: report.torn })
    const loaded = await loadProfiles(deps, { shipped: join(CONFIG_DIR, "agents"), project: join(projectDir, options.stateDir, "agents") }, options.agents)
    for (const p of loaded.problems) deps.log.log("error", `agent profile problem (that definition is left out): ${p}`)
    if (loaded.problems.length)
      void deps.host.toast(`NSO agent profiles: ${loaded.problems[0]}${loaded.problems.length > 1 ? ` (+${loaded.problems.length - 1} more)` : ""}`, "error").catch(() => {})
    const rt = new Runtime(deps, projectDir, options, journal, state, report, loaded)
    rt.deliverer.load(state.pending.values())
    return rt
  }

  /**
   * Work that needs OpenCode up, deferred past plugin start: settling deliveries a crash left in
   * doubt, restart recovery of tasks, and the reconciliation sweeps.
   */
  async startBackground(): Promise<void> {
    await this.deliverer.settle([...this.state.inDoubt.entries()], this.state.inDoubtEnvelopes)
    await this.tasks.recover((t) => this.interrupted(t))
    this.tasks.startSweep()
    if (this.options.tasks.reconcileMs > 0 && !this.activitySweep)
      this.activitySweep = this.deps.timers.setInterval(() => void this.repairActivity(), this.options.tasks.reconcileMs, { keepAlive: false })
  }

  /**
   * A lost idle event would leave a session "busy" in NSO's eyes and its messages undelivered
   * for ever. For sessions with messages waiting, ask OpenCode what is really busy.
   */
  async repairActivity(): Promise<void> {
    const stuck = this.deliverer.waitingSessions().filter((id) => this.registry.get(id).busy)
    if (!stuck.length) return
    const busy = await this.deps.host.busySessions().catch(() => undefined)
    if (!busy) return
    for (const id of stuck) if (!busy.has(id)) this.sessionBusy(id, false)
  }

  /** A task a restart cut off, handled by the close policy. */
  private async interrupted(t: Task): Promise<void> {
    const policy = this.options.tasks.closePolicy
    if (policy === "kill") {
      await this.tasks.cancel(t.id, "interrupted by a restart (close policy: kill)")
    } else if (policy === "persist") {
      await this.tasks.resume(t.id)
    } else {
      await this.tasks.markInterrupted(t.id)
      await this.questions.askForTask(t, `Task "${t.title}" (${t.agent}, ${t.id}) was interrupted by a server restart. Resume it or cancel it?`, ["resume", "cancel"])
    }
  }

  /** Agents background work can be delegated to: name → concurrency key and prompt tools. */
  agents(): Map<string, AgentInfo> {
    const out = new Map<string, AgentInfo>()
    for (const [name, p] of this.profiles) if (p.mode !== "primary") out.set(name, { key: this.modelOf(p) ?? "default", delegates: p.delegates })
    return out
  }

  /** A profile's model: a `provider/model` as given, a tier through the `models` option, else OpenCode's default. */
  modelOf(p: Profile): string | undefined {
    if (!p.model) return undefined
    if (p.model === "fast" || p.model === "strong") return this.options.models[p.model]
    return p.model
  }

  /** The full prompt of a profile: its template (or inline text) plus style and escalation guidance. */
  promptOf(p: Profile): string {
    const base = /^[\w./-]+\.md$/.test(p.prompt) ? readTemplate(p.prompt) : p.prompt
    return `${base}\n\n${promptSuffix(p)}`
  }

  /** The runbook index, read on first use rather than at plugin start. */
  knowledge(): Promise<KnowledgeIndex> {
    this.knowledgeIndex ??= KnowledgeIndex.build(this.deps, this.projectDir, this.profiles)
    return this.knowledgeIndex
  }

  /** NSO's own check of a profile's tool rules (OpenCode's permissions say the same where they can). */
  refuseTool(sessionId: string, call: { name: string; effect?: ToolEffect }): string | undefined {
    const agent = this.registry.get(sessionId).agent
    const p = agent ? this.profiles.get(agent) : undefined
    if (!p) return undefined
    const v = toolVerdict(p, call)
    if (v.ok) return undefined
    return `NSO refused ${call.name}: the ${agent} agent may not use it — ${v.why}. Do not retry it. Continue with the tools you have, or report what needs doing so an agent that may do it can be given the task.`
  }

  /** Records another process (the CLI) appended: act on what concerns this server. */
  async pullForeign(): Promise<void> {
    for (const rec of await this.journal.readForeign()) {
      nsoReducer.apply(this.state, rec)
      const e = rec.e
      if (e.type === "question.answered") await this.questions.answeredElsewhere(e.id)
      else if (e.type === "task.cancel_requested") await this.tasks.cancel(e.id, `cancelled by ${e.by}`).catch(() => {})
    }
  }

  /**
   * The write guard: a task writes only inside its scope, and nobody writes into a running
   * task's scope. Returns the refusal text, written for the model, or undefined to allow.
   */
  refuseWrite(sessionId: string, tool: string, targets: readonly string[]): string | undefined {
    const own = this.tasks.bySessionId(sessionId)
    for (const target of targets) {
      const rel = projectPath(this.projectDir, target)
      if (own && own.scope.length && (rel === undefined || !inScope(own.scope, rel)))
        return `NSO refused this ${tool}: "${target}" is outside your task's write scope (${own.scope.join(", ")}). Write only inside that scope, or finish and say in your summary what else needs changing.`
      if (rel === undefined) continue
      for (const other of this.state.tasks.values()) {
        if (other.id === own?.id || !other.scope.length || !["running", "waiting_for_answer", "stalled"].includes(other.status)) continue
        if (inScope(other.scope, rel))
          return `NSO refused this ${tool}: "${target}" belongs to running task ${other.id} (${other.agent}, scope ${other.scope.join(", ")}). Writing there would mix two tasks' work. Leave that file alone until the task ends.`
      }
    }
    return undefined
  }

  /** Journals an event and folds it into the live state once it is durable. */
  async write(event: JournalEvent): Promise<void> {
    await this.journal.append(event)
    nsoReducer.apply(this.state, { v: 1, w: this.journal.writer, s: 0, t: this.deps.clock.now(), e: event })
  }

  runningTasks(sessionId: string): number {
    return this.tasks.running(sessionId)
  }

  // ----- events -------------------------------------------------------------------------------

  sessionCreated(id: string, facts: { parentId?: string; title?: string }): Promise<unknown> {
    this.registry.learn(id, facts)
    return this.init.ensure(id, "session.created")
  }

  sessionBusy(id: string, busy: boolean): void {
    this.registry.setBusy(id, busy)
    if (!busy) this.deliverer.poke(id)
  }

  async sessionDeleted(id: string): Promise<void> {
    const info = this.registry.get(id)
    if (!info.parentId) await this.closeSession(id)
    const task = this.tasks.bySessionId(id)
    if (task && !TERMINAL_TASK_STATUSES.has(task.status)) {
      // Someone deleted a task's session: the work cannot go on; say so instead of waiting for a stall.
      await this.tasks.cancel(task.id, "its session was deleted")
    }
    this.init.forget(id)
    this.registry.forget(id)
  }

  /** Appends the session's summary to progress.md (once). */
  async closeSession(id: string): Promise<string | undefined> {
    if (this.closed.has(id)) return undefined
    this.closed.add(id)
    const text = this.summary(id)
    return appendProgress(this.deps, this.projectDir, this.options.init.contextDir, text)
  }

  private summary(id: string): string {
    const tasks = [...this.state.tasks.values()].filter((t) => t.parentSessionId === id)
    const taskIds = new Set(tasks.map((t) => t.id))
    const questions = [...this.state.questions.values()].filter((q) => q.taskId && taskIds.has(q.taskId))
    return sessionSummary(this.registry.get(id), tasks, questions, this.deps.clock.now())
  }

  // ----- messages -----------------------------------------------------------------------------

  async message(sessionId: string, agent: string | undefined, parts: IncomingPart[], messageId?: string): Promise<Classification> {
    const info = await this.registry.resolve(sessionId)
    await this.init.ensure(sessionId, "chat.message")
    const parent = info.parentId ? this.registry.get(info.parentId) : undefined
    const c = classify({ sessionId, parentSessionId: info.parentId, parentAgent: parent?.agent, parts })
    if (agent) info.agent = agent
    info.counts[c.source]++
    const said = parts.map((p) => p.text).join("\n").trim()
    if (said) info.lastText = said
    if (c.source === "user" && !info.parentId) {
      // The human spoke: hold agent messages until the next pause.
      info.lastUserMessageAt = this.deps.clock.now()
      this.registry.setBusy(sessionId, true)
      const text = parts.filter((p) => !p.synthetic).map((p) => p.text).join("\n")
      const r = route({ source: "user", kind: "assignment", priority: "medium", text }, this.intents)
      if (r.handler === "intent" && r.suggestion) this.suggestions.set(sessionId, r.suggestion)
      else this.suggestions.delete(sessionId)
    }
    // An audit line, not state: it grows with the chat, so it stays out of the journal.
    this.tags.append({ time: new Date(this.deps.clock.now()).toISOString(), sessionId, messageId, source: c.source, from: c.from, agent })
    return c
  }

  async system(sessionId: string): Promise<string[]> {
    const out = await this.init.systemFor(sessionId)
    const info = this.registry.get(sessionId)
    if (info.agent && info.lastText && this.profiles.get(info.agent)?.knowledge.length) {
      const k = (await this.knowledge()).select(info.agent, info.lastText, this.options.knowledge.budgetChars)
      if (k) out.push(k.text)
    }
    const s = this.suggestions.get(sessionId)
    if (s) out.push(`NSO intent monitor: the user's last message matches the "${s.rule}" rule; the ${s.agent} agent may suit it.`)
    return out
  }

  compacting(sessionId: string): string[] {
    const pending = this.deliverer.pending(sessionId)
    const tasks = this.tasks.tree(sessionId).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    const open = this.questions.open()
    if (!pending.length && !tasks.length) return []
    const lines = ["NSO task board (keep this across compaction):"]
    for (const t of tasks) {
      const q = open.find((x) => x.taskId === t.id)
      lines.push(`- task ${t.id} · ${t.agent} · ${t.status} · ${t.title}${q ? ` · pending question ${q.id}: ${q.text}` : ""}`)
    }
    for (const e of pending) lines.push(`- waiting for delivery: ${header(e)}`)
    return [lines.join("\n")]
  }

  // ----- shutdown -----------------------------------------------------------------------------

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    if (this.activitySweep) this.deps.timers.clearInterval(this.activitySweep)
    this.tasks.dispose()
    this.questions.dispose()
    this.deliverer.dispose()
    await this.toolLog.flush()
    await this.tags.flush()
    await this.journal.close()
  }

  /**
   * SIGTERM: OpenCode does not call `dispose`, and the process may exit right after the signal
   * handlers run, so this is synchronous. Journal records are already on disk (every append was
   * awaited before it was acknowledged); what is left is the close summary of open root sessions.
   */
  flushSync(): void {
    for (const s of this.registry.all()) {
      if (s.parentId || this.closed.has(s.id) || s.counts.user + s.counts.agent === 0) continue
      this.closed.add(s.id)
      try {
        const path = join(this.projectDir, this.options.init.contextDir, "01_memory", "progress.md")
        mkdirSync(join(path, ".."), { recursive: true })
        appendFileSync(path, this.summary(s.id).replace("\n## ", "\n## (server stopped) "))
      } catch {
        // Best effort by definition.
      }
    }
  }
}

function readTemplate(name: string): string {
  return readFileSync(join(TEMPLATES_DIR, name), "utf8").trim()
}

/** Appends log lines to `.opencode/nso/nso.log` (never stdout: that is OpenCode's). */
export function fileLogger(path: string, minLevel: LogLevel): Logger {
  const order: LogLevel[] = ["debug", "info", "warn", "error"]
  const min = order.indexOf(minLevel)
  let ready = false
  return {
    log(level, message, extra) {
      if (order.indexOf(level) < min) return
      try {
        if (!ready) {
          mkdirSync(join(path, ".."), { recursive: true })
          ready = true
        }
        appendFileSync(path, JSON.stringify({ time: new Date().toISOString(), level, message, ...extra }) + "\n")
      } catch {
        // Logging must never break a hook.
      }
    },
  }
}
