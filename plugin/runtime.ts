import { join } from "node:path"
import { AgentCatalogue, readTemplates } from "./agents/catalogue.js"
import { loadProfiles } from "./agents/load.js"
import { loadTeams } from "./teams/load.js"
import { contextPath, formatContext, readContext } from "./messaging/project-context.js"
import { Deliverer } from "./buffer/delivery.js"
import type { Deps } from "./deps.js"
import { Journal } from "./journal/journal.js"
import { nsoReducer, type LiveState } from "./journal/state.js"
import type { Options } from "./options.js"
import { CONFIG_DIR } from "./paths.js"
import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type JournalEvent, type Task } from "./protocol.js"
import { TaskError } from "./tasks/manager.js"
import { rootSession } from "./tasks/tree.js"
import { QuestionManager } from "./questions/manager.js"
import { Inbound } from "./router/inbound.js"
import { createIntentMonitor } from "./router/intent.js"
import { Outbox } from "./router/outbox.js"
import { SessionCloser } from "./session/close.js"
import { SessionInit } from "./session/init.js"
import { Notices } from "./session/notices.js"
import { PromptAdditions } from "./session/prompt.js"
import { SessionRegistry } from "./session/registry.js"
import { TaskManager } from "./tasks/manager.js"
import { TeamRunner } from "./teams/runner.js"
import { Messenger } from "./messaging/messenger.js"
import { fileSink } from "./telemetry/files.js"
import { keywordsOf } from "./telemetry/keywords.js"
import { bestAgent } from "./telemetry/analysis.js"
import { openTelemetry, telemetryDir } from "./telemetry/read.js"
import { TelemetryRecorder, type TelemetrySink } from "./telemetry/recorder.js"
import type { OtelSink } from "./telemetry/otel.js"
import { memberName, orderedMembers } from "./teams/team.js"
import type { Team } from "./teams/team.js"
import { JsonlLog } from "./telemetry/jsonl.js"
import { ToolLog } from "./telemetry/tool-log.js"
import { JobRunner } from "./jobs/runner.js"

/**
 * NSO's core, wired together: the journal and the state it replays, and one module per concern
 * — agent catalogue, inbound tagging, the outbox, delivery, tasks, questions, init, prompt
 * additions, close summaries, the logs. The OpenCode adapter calls these modules; this class
 * only builds them, routes session events to them, and starts and stops background work.
 */
export class Runtime {
  readonly registry: SessionRegistry
  readonly catalogue: AgentCatalogue
  readonly inbound: Inbound
  readonly outbox: Outbox
  readonly deliverer: Deliverer
  readonly tasks: TaskManager
  /** Team runs over the tasks. */
  readonly runs: TeamRunner
  readonly questions: QuestionManager
  /** Background shell jobs (no model). */
  readonly jobs: JobRunner
  /** Agent-to-agent messages and the shared board. */
  readonly messenger: Messenger
  /** Workflow events and invocation lines, written as work happens. */
  readonly telemetry: TelemetryRecorder
  private readonly telemetryFiles: ReturnType<typeof fileSink>
  /** The OpenTelemetry exporter, when `telemetry.otlp` is set. */
  private otel: OtelSink | undefined
  readonly init: SessionInit
  readonly prompt: PromptAdditions
  readonly closer: SessionCloser
  readonly toolLog: ToolLog
  /** Problems to put in front of the user (bad options, profiles left out, orphaned questions). */
  readonly notices = new Notices()
  /** How each message was tagged (source, sender): `.opencode/nso/messages.jsonl`. */
  readonly tags: JsonlLog
  /** When this runtime started (ms since epoch). */
  readonly startedAt: number
  private activitySweep: ReturnType<Deps["timers"]["setInterval"]> | undefined
  private disposed = false
  /** Root sessions whose reply the user stopped while background work ran: their next turn is reminded, once. */
  private stopped = new Set<string>()
  /** Who watches NSO's events as they happen (the dashboard). */
  private readonly listeners = new Set<(e: JournalEvent) => void>()

  private constructor(
    readonly deps: Deps,
    readonly projectDir: string,
    readonly options: Options,
    readonly journal: Journal<LiveState>,
    readonly state: LiveState,
    catalogue: AgentCatalogue,
    templates: ReadonlyMap<string, string>,
    /** The loaded teams, by name. */
    readonly teams: ReadonlyMap<string, Team>,
    /** More telemetry sinks (an OpenTelemetry exporter), beside the files. */
    sinks: TelemetrySink[] = [],
  ) {
    this.startedAt = deps.clock.now()
    this.catalogue = catalogue
    this.registry = new SessionRegistry(deps)
    this.deliverer = new Deliverer(deps, options.buffer, this.registry, {
      write: (e) => this.write(e),
      runningTasks: (sid) => this.tasks.running(sid) + this.runs.liveFrom(sid) + this.jobs.running(sid),
      gathers: (sid) => this.runs.gathers(sid),
      delivered: (sid, reply) => {
        if (reply) this.telemetry.deliveryTurn(sid)
      },
      agentOf: (sid) => {
        const t = this.tasks.bySessionId(sid)
        return t && { agent: t.agent, delegates: this.catalogue.delegatable().get(t.agent)?.delegates ?? false }
      },
    })
    const isolation = templates.get("task_isolation_header.md") ?? ""
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
      agents: () => this.catalogue.delegatable(),
      onInterrupted: (t, how) => this.interrupted(t, how),
      sessionStarted: (sid, parentId, title) => void this.registry.learn(sid, { parentId, title }),
      isolationHeader: renderIsolation,
      // Messages held or being handed to it, team runs it started, or a turn NSO just started in it.
      awaiting: (sid) => this.deliverer.holding(sid) + this.runs.liveFrom(sid) + this.jobs.running(sid) + (this.registry.get(sid).busy ? 1 : 0),
      projectDir,
      stateDir: options.stateDir,
    })
    this.runs = new TeamRunner(deps, { memberResultChars: 1_500 }, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      tasks: this.tasks,
      teams: () => this.teams,
      choose: (text) => this.chooseAgent(text),
      projectContext: async () => {
        const c = await readContext(deps, contextPath(projectDir, options.stateDir))
        return c.goal || c.status || c.notes.length ? formatContext(c, 5) : undefined
      },
    })
    this.jobs = new JobRunner(deps, options.jobs, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      refuse: (agent, command) => this.catalogue.refuseCommand(agent, command),
      taskOf: (sid) => this.tasks.bySessionId(sid)?.id,
      logged: (job, phase) =>
        this.toolLog.note({
          sessionId: job.sessionId,
          agent: job.startedBy,
          tool: `job.${phase}`,
          args: { id: job.id, title: job.title, command: job.command, ...(phase === "ended" ? { status: job.status, exitCode: job.exitCode, signal: job.signal } : {}) },
          ...(phase === "ended" && job.endedAt ? { durationMs: job.endedAt - job.startedAt } : {}),
          ...(phase === "ended" && job.status !== "succeeded" ? { error: job.reason ?? job.status } : {}),
        }),
      projectDir,
      stateDir: options.stateDir,
    })
    this.questions = new QuestionManager(deps, options.tasks.questionTimeoutMs, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      inboxOf: (taskId) => this.outbox.recipient({ kind: "question", taskId }),
      rootOf: (sid) => this.registry.root(sid),
      withdraw: (sid, qid) => this.deliverer.withdraw(sid, qid),
      tasks: this.tasks,
      decide: (taskId, choice) => this.decideInterrupted(taskId, choice),
    })
    this.telemetryFiles = fileSink(deps, join(projectDir, options.stateDir, "telemetry"), options.telemetry.fileMaxBytes)
    this.telemetry = new TelemetryRecorder(
      deps,
      {
        tasks: state.tasks,
        runs: state.workflows,
        profile: (a) => catalogue.profiles.get(a),
        plan: (name) => {
          const t = this.teams.get(name)
          return t ? [...(t.coordinator ? [t.coordinator] : []), ...orderedMembers(t).map(memberName)] : []
        },
        keywords: (text) => keywordsOf(text),
        projectName: projectDir.split(/[\\/]/).filter(Boolean).pop() ?? projectDir,
      },
      [this.telemetryFiles, ...sinks],
    )
    this.messenger = new Messenger(deps, options.messaging, {
      state,
      write: (e) => this.write(e),
      post: (m) => this.outbox.post(m),
      tasks: this.tasks,
      interruptQuestion: (taskId, text) => this.questions.interrupt(taskId, text),
      audit: (r) => this.tags.append(r),
    })
    // A task that ended will never read what still waits for it: drop it, and say so in the log.
    // Jobs it started would report to nobody: stop them.
    this.tasks.onEnded((t) => {
      if (t.sessionId && this.jobs.running(t.sessionId))
        void this.jobs.cancelOwnedBy(t.sessionId, `the task that started it (${t.agent}: ${t.title}) ended ${t.status}`).catch((err) => deps.log.log("warn", "could not stop a task's jobs", { task: t.id, error: String(err) }))
      if (t.sessionId)
        void this.deliverer
          .dropAll(t.sessionId)
          .then((gone) => gone.length && deps.log.log("warn", "messages for a task that ended were dropped", { task: t.id, ids: gone.map((e) => e.id) }))
          .catch(() => {})
    })
    this.init = new SessionInit(deps, { projectDir, stateDir: options.stateDir, init: options.init }, this.registry, {
      headerGuide: templates.get("nso_headers.md") ?? "",
      childHeader: async (sid) => {
        const task = this.tasks.bySessionId(sid)
        return task ? renderIsolation(task) : undefined
      },
      onRootReady: async (sid) => this.deliverer.poke(sid),
      // Only a root session's init is worth a journal record (its memory files, its greeting); a
      // child's is the isolation header, cheap to redo after a restart, and one fewer fsync per task.
      record: (sid, root) => (!root || this.state.initialized.has(sid) ? Promise.resolve() : this.write({ type: "session.initialized", sessionId: sid, root })),
    })
    this.toolLog = new ToolLog(deps, ToolLog.at(projectDir, options.stateDir))
    this.tags = new JsonlLog(deps, join(projectDir, options.stateDir, "messages.jsonl"))
    this.inbound = new Inbound(deps, this.registry, this.init, createIntentMonitor(options.router.intents), this.tags, (sid) => this.showNotices(sid))
    this.prompt = new PromptAdditions({
      init: this.init,
      registry: this.registry,
      catalogue,
      knowledgeBudgetChars: options.knowledge.budgetChars,
      suggestion: (sid) => this.inbound.suggestion(sid),
      pending: (sid) => this.deliverer.pending(sid),
      tree: (sid) => this.tasks.tree(sid),
      openQuestions: () => this.questions.open(),
      boardDigest: (sid) => this.messenger.digest(sid),
      reminder: (sid) => this.stopReminder(sid),
    })
    this.closer = new SessionCloser(
      deps,
      { projectDir, contextDir: options.init.contextDir, registry: this.registry, tasks: () => state.tasks.values(), questions: () => state.questions.values(), jobs: () => state.jobs.values() },
    )
  }

  /**
   * `problems`: what was wrong with the options (each already dropped), for the user to see.
   * `shared`: folders of profiles and teams shared across projects (agents/shared.ts), lowest first.
   */
  static async start(
    deps: Deps,
    projectDir: string,
    options: Options,
    problems: readonly string[] = [],
    shared: { agents: readonly string[]; teams: readonly string[] } = { agents: [], teams: [] },
  ): Promise<Runtime> {
    const dir = join(projectDir, options.stateDir)
    const { journal, state, report } = await Journal.open(deps, nsoReducer, {
      dir,
      maxBytes: options.journal.maxBytes,
      fsync: options.journal.fsync,
    })
    if (report.corrupt || report.torn)
      deps.log.log("warn", "journal had damaged lines; they were skipped", { corrupt: report.corrupt, torn: report.torn })
    // NSO's state is not the project's: keep it out of git, and out of the work-tree snapshots
    // OpenCode takes at every step (which would otherwise hash the journal and logs each time).
    // The project's own profiles and teams are: they are kept. An older NSO's file (profiles only) is brought up to date.
    const ignore = join(dir, ".gitignore")
    const ours = "# NSO's state (journal, logs, task files) is not for version control; the project's agent profiles and teams are.\n*\n!.gitignore\n!agents/\n!agents/**\n!teams/\n!teams/**\n"
    const had = await deps.fs.readFile(ignore, "utf8").catch(() => undefined)
    if (had === undefined || (had.startsWith("# NSO's state") && !had.includes("!teams/"))) await deps.fs.writeFile(ignore, ours).catch(() => {})
    const loaded = await loadProfiles(deps, { shipped: join(CONFIG_DIR, "agents"), shared: shared.agents, project: join(projectDir, options.stateDir, "agents") }, options.agents)
    const teams = await loadTeams(deps, { shipped: join(CONFIG_DIR, "teams"), shared: shared.teams, project: join(projectDir, options.stateDir, "teams") }, options.teams, loaded.profiles)
    for (const p of teams.problems) deps.log.log("error", `team problem (that team is left out): ${p}`)
    for (const p of loaded.problems) deps.log.log("error", `agent profile problem (that definition is left out): ${p}`)
    const defects = [...loaded.problems, ...teams.problems]
    if (defects.length) void deps.host.toast(`NSO profiles and teams: ${defects[0]}${defects.length > 1 ? ` (+${defects.length - 1} more)` : ""}`, "error").catch(() => {})
    const templates = await readTemplates(deps, ["nso_headers.md", "task_isolation_header.md", ...[...loaded.profiles.values()].map((p) => p.prompt)])
    const catalogue = new AgentCatalogue(deps, projectDir, options.models, loaded, templates)
    // OpenTelemetry export, only when configured: its packages are loaded only then.
    let otel: OtelSink | undefined
    let otelProblem: string | undefined
    if (options.telemetry.otlp) {
      const { endpoint, headers } = options.telemetry.otlp
      try {
        otel = (await import("./telemetry/otel.js")).otelSink({ endpoint, ...(headers ? { headers } : {}) }, deps)
      } catch (err) {
        otelProblem = String(err)
        deps.log.log("error", "OpenTelemetry export could not start; telemetry goes to the files only", { endpoint, error: otelProblem })
      }
    }
    const rt = new Runtime(deps, projectDir, options, journal, state, catalogue, templates, teams.teams, otel ? [otel] : [])
    rt.otel = otel
    if (otelProblem) rt.notices.add(`NSO telemetry: the OpenTelemetry export could not start (${otelProblem}); telemetry goes to the files only.`)
    rt.deliverer.load(state.pending.values())
    for (const p of problems) rt.notices.add(`NSO options: ${p} — that setting is ignored; fix it in the file named.`)
    for (const p of loaded.problems) rt.notices.add(`NSO agent profiles: ${p} — that definition is left out.`)
    for (const p of teams.problems) rt.notices.add(`NSO teams: ${p} — that team is left out.`)
    if (report.corrupt) rt.notices.add(`NSO's journal had ${report.corrupt} damaged line(s); they were skipped (see .opencode/nso/nso.log).`)
    return rt
  }

  /**
   * Work that needs OpenCode up, deferred past plugin start: settling deliveries a crash left in
   * doubt, restart recovery of tasks, and the reconciliation sweeps.
   */
  async startBackground(): Promise<void> {
    await this.deliverer.settle([...this.state.inDoubt.entries()], this.state.inDoubtEnvelopes)
    // Jobs need nothing from OpenCode to settle: first, and whatever happens to the rest.
    await this.jobs.recover().catch((err) => this.deps.log.log("error", "job recovery failed", { error: String(err) }))
    await this.tasks.recover()
    await this.runs.recover()
    this.telemetry.resume()
    for (const q of await this.questions.closeOrphans())
      this.notices.add(`Question ${q.id} (${q.from}: "${q.text.slice(0, 80)}") was closed: ${q.closedReason}. An answer to it could reach nobody.`)
    // Questions still open from before the restart are shown where the user writes next, not
    // re-asked in every old session (each would cost a model turn in a session nobody reads).
    const buffered = new Set(this.deliverer.waitingSessions().flatMap((sid) => this.deliverer.pending(sid).map((e) => e.questionId)))
    for (const q of this.questions.open())
      if (q.askedAt < this.startedAt && !buffered.has(q.id) && q.from !== "nso")
        this.notices.add(`Still waiting for your answer (asked before OpenCode restarted) — ${q.id} · ${q.from}: ${q.text}${q.options.length ? ` [${q.options.join(" | ")}]` : ""} → /answer ${q.id} <answer>`)
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

  /**
   * A task whose work was cut off, handled by the close policy: after a restart `persist`
   * resumes it, `kill` cancels it, `ask` asks the user. A reply stopped while the server runs
   * (the user's Esc in the child, or OpenCode on its way down) is never resumed on its own: the
   * user is asked unless the policy is `kill`. One open question per task, however many restarts.
   */
  private async interrupted(t: Task, how: "restart" | "stopped"): Promise<void> {
    const policy = this.options.tasks.closePolicy
    if (policy === "kill") return void (await this.tasks.cancel(t.id, `interrupted by ${how === "restart" ? "a restart" : "a stop outside NSO"} (close policy: kill)`))
    if (policy === "persist" && how === "restart") return this.tasks.resume(t.id)
    await this.tasks.markInterrupted(t.id)
    // One question per task — and per team run: one decision covers all its members.
    const run = t.workflow && this.runs.get(t.workflow.id)
    const covered = (q: { taskId?: string }) => q.taskId === t.id || (!!run && this.tasks.get(q.taskId ?? "")?.workflow?.id === run.id)
    if (this.questions.open().some((q) => q.from === "nso" && covered(q))) return
    const why = how === "restart" ? "was interrupted when OpenCode stopped or restarted" : "was stopped before it finished (its reply was aborted outside NSO)"
    const what = run ? `Team run ${run.id} ("${run.team}": ${run.title})` : `Task "${t.title}" (${t.agent}, ${t.id})`
    await this.questions.askForTask(t, `${what} ${why}. Resume it or cancel it?`, ["resume", "cancel"])
  }

  /** The user's resume-or-cancel for an interrupted task; for a team run member, for the whole run. */
  private async decideInterrupted(taskId: string, choice: "resume" | "cancel"): Promise<void> {
    const t = this.tasks.get(taskId)
    const run = t?.workflow && this.runs.get(t.workflow.id)
    if (choice === "cancel") {
      if (run) await this.runs.cancel(run.id, "the user chose to cancel it after it was interrupted")
      else await this.tasks.cancel(taskId, "the user chose to cancel it after a restart")
      return
    }
    const members = run ? this.runs.tasksOf(run.id).map((x) => x.id) : [taskId]
    for (const id of members) if (this.tasks.isInterrupted(id)) await this.tasks.resume(id)
  }

  /**
   * The user stopped a reply (Esc, abort) in a session. Its background work goes on — that is
   * the point of it — and the next turn there is told so, once. A task's own session is the task
   * manager's concern.
   */
  replyStopped(sessionId: string): void {
    if (this.tasks.bySessionId(sessionId) || this.registry.get(sessionId).parentId) return
    if (this.tasks.running(sessionId) + this.runs.liveFrom(sessionId) > 0) this.stopped.add(sessionId)
  }

  private stopReminder(sessionId: string): string | undefined {
    if (!this.stopped.delete(sessionId)) return undefined
    const live = this.tasks.tree(sessionId).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    if (!live.length && !this.runs.liveFrom(sessionId)) return undefined
    const list = live.slice(0, 8).map((t) => `${t.id} (${t.agent}: ${t.title})`).join(", ")
    return `NSO: the user stopped your previous reply; background work was not stopped and keeps running — ${live.length} task(s)${live.length ? `: ${list}${live.length > 8 ? ", …" : ""}` : ""}. Say so if it matters; tasks shows it, tasks with cancel: true (or the user's /nso-cancel-all) stops it.`
  }

  /**
   * Stops all background work of a session's tree — team runs and tasks, deepest first — or of
   * every session when none is named (the CLI's `nso cancel --all`). Returns what was stopped.
   */
  async cancelAll(sessionId: string | undefined, reason: string): Promise<{ tasks: Task[]; runs: string[]; jobs: string[] }> {
    const inTree = sessionId ? this.tasks.tree(sessionId) : [...this.state.tasks.values()]
    const sessions = sessionId ? new Set([sessionId, ...inTree.flatMap((t) => (t.sessionId ? [t.sessionId] : []))]) : undefined
    const runs = [...this.state.workflows.values()].filter((w) => !w.parentWorkflowId && !TERMINAL_PHASES.has(w.phase) && (!sessions || sessions.has(w.parentSessionId)))
    const out: Task[] = []
    for (const w of runs) out.push(...(await this.runs.cancel(w.id, reason, { tell: false })))
    const tops = inTree.filter((t) => !TERMINAL_TASK_STATUSES.has(t.status) && !(t.parentTaskId && !TERMINAL_TASK_STATUSES.has(this.tasks.get(t.parentTaskId)?.status ?? "failed")))
    for (const t of tops) if (!TERMINAL_TASK_STATUSES.has(this.tasks.get(t.id)!.status)) out.push(...(await this.tasks.cancel(t.id, reason, { tell: false })))
    // Jobs: the session's own, and (already stopped above) those of the tasks that ended.
    const jobs = [...this.state.jobs.values()].filter((j) => j.status === "running" && (!sessions || sessions.has(j.sessionId)))
    for (const j of jobs) await this.jobs.cancel(j.id, reason, { tell: false }).catch((err) => this.deps.log.log("warn", "could not stop a job", { id: j.id, error: String(err) }))
    return { tasks: out, runs: runs.map((w) => w.id), jobs: jobs.map((j) => j.id) }
  }

  /** Puts the notices this session has not seen in front of the user, once, without a model turn. */
  private showNotices(sessionId: string): void {
    for (const text of this.notices.unseen(sessionId))
      void this.outbox.post({ source: "system", from: "nso", to: "user", kind: "status", sessionId, text }).catch((err) => this.deps.log.log("warn", "could not post a notice", { error: String(err) }))
  }

  /** Records another process (the CLI) appended: act on what concerns this server. */
  async pullForeign(): Promise<void> {
    for (const rec of await this.journal.readForeign()) {
      nsoReducer.apply(this.state, rec)
      const e = rec.e
      this.emit(e)
      if (e.type === "question.answered") await this.questions.answeredElsewhere(e.id)
      else if (e.type === "task.cancel_requested")
        await (e.id.startsWith("wf_") ? this.runs.cancel(e.id, `cancelled by ${e.by}`) : this.tasks.cancel(e.id, `cancelled by ${e.by}`)).catch(() => {})
      else if (e.type === "task.cancel_all_requested")
        await this.cancelAll(e.sessionId, `cancelled by ${e.by} (stop everything)`).catch((err) => this.notices.add(`Stopping all background work (${e.by}) failed: ${(err as Error).message}`))
      else if (e.type === "workflow.requested") await this.startRequested(e)
      else if (e.type === "job.cancel_requested") await this.jobs.cancel(e.id, `cancelled by ${e.by}`).catch(() => {})
      else if (e.type === "message.told") await this.tell(e.to, e.text, e.by).catch((err) => this.notices.add(`Your message for ${e.to} (${e.by}) was not delivered: ${(err as Error).message}`))
    }
  }

  /**
   * `agent: "auto"`: the agent with the best record on tasks like this one (telemetry), else the
   * first intent rule that matches the text, else the builder — with the reason, for the model.
   */
  async chooseAgent(text: string): Promise<{ agent: string; why: string }> {
    const agents = this.catalogue.delegatable()
    try {
      const files = openTelemetry(this.deps, telemetryDir(this.projectDir, this.options.stateDir))
      const profiles = [...this.catalogue.profiles.values()].filter((p) => agents.has(p.name)).map((p) => ({ name: p.name, specialization: p.specialization, tags: p.tags, description: p.description }))
      const r = await bestAgent({ task: text }, files.input.invocations, profiles, { now: this.deps.clock.now() })
      const b = r.best
      if (b && agents.has(b.agent)) {
        const rate = b.successRate === null ? "no matching history" : `${Math.round(b.successRate * 100)}% success on ${b.experience} similar task(s)`
        const words = b.evidence.keywords.slice(0, 4).map((k) => k.keyword)
        return { agent: b.agent, why: `best record for this kind of task — ${rate}, confidence ${Math.round(b.confidence * 100)}%${words.length ? `, matched on ${words.join(", ")}` : ""}${b.trend !== "not enough data" ? `, ${b.trend}` : ""}` }
      }
    } catch (err) {
      this.deps.log.log("warn", "telemetry could not rank agents; falling back to the rules", { error: String(err) })
    }
    const hint = createIntentMonitor(this.options.router.intents)(text)
    if (hint && agents.has(hint.agent)) return { agent: hint.agent, why: `not enough history to rank agents; the "${hint.rule}" routing rule matches` }
    return { agent: "builder", why: "not enough history to rank agents and no routing rule matches: the builder is the default" }
  }

  /**
   * The person's own message for a running task (or every member of a team run), from /tell or
   * the CLI: tagged `source: user`, delivered at the agent's next turn boundary.
   */
  async tell(to: string, text: string, by: string): Promise<{ to: string; outcome: string }> {
    const task = this.tasks.get(to)
    const run = to.startsWith("wf_") ? this.runs.get(to) : undefined
    const sid = task ? rootSession(this.state.tasks, task) : run ? this.runs.rootSessionOf(run) : undefined
    if (!sid) throw new TaskError(`No task or team run "${to}". /nso-status (or nso tasks) lists them.`)
    const sent = await this.messenger.send({ sessionId: sid, from: "user", source: "user", to, text })
    this.deps.log.log("info", "the user told a task", { to, by, outcome: sent.outcome })
    return { to: sent.to, outcome: sent.outcome }
  }

  /**
   * A team run asked for from outside (the CLI): started from the named session, else from the
   * root session the user wrote in last. What went wrong reaches the user as a notice.
   */
  private async startRequested(e: Extract<JournalEvent, { type: "workflow.requested" }>): Promise<void> {
    const roots = this.registry.all().filter((s) => !s.parentId)
    const sessionId = e.sessionId ?? roots.sort((a, b) => (b.lastUserMessageAt ?? 0) - (a.lastUserMessageAt ?? 0))[0]?.id
    if (!sessionId) return void this.notices.add(`Team run of "${e.team}" asked for by ${e.by} was not started: no OpenCode session is open yet. Open one and ask again.`)
    try {
      await this.runs.start({ team: e.team, goal: e.goal, parentSessionId: sessionId, startedBy: "user" })
    } catch (err) {
      this.notices.add(`Team run of "${e.team}" asked for by ${e.by} was not started: ${(err as Error).message}`)
    }
  }

  /**
   * Folds an event into the live state at once and journals it; resolves once it is durable.
   * The state shows what NSO decided the moment it decides (so a completion posted in the same
   * tick sees its task ended); whatever is acknowledged to someone who could lose it — a tool
   * result, an injection — awaits durability first, and batches reach the disk in order.
   */
  write(event: JournalEvent): Promise<void> {
    nsoReducer.apply(this.state, { v: 1, w: this.journal.writer, s: 0, t: this.deps.clock.now(), e: event })
    this.telemetry.observe(event)
    this.emit(event)
    return this.journal.append(event)
  }

  /** Calls `listener` with every event once it is applied to the state; returns the unsubscribe. */
  onEvent(listener: (e: JournalEvent) => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }

  private emit(e: JournalEvent): void {
    for (const l of this.listeners)
      try {
        l(e)
      } catch (err) {
        this.deps.log.log("warn", "an event listener failed", { error: String(err) })
      }
  }

  // ----- session events -----------------------------------------------------------------------

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
    if (!info.parentId) await this.closer.close(id)
    const task = this.tasks.bySessionId(id)
    if (task && !TERMINAL_TASK_STATUSES.has(task.status)) {
      // Someone deleted a task's session: the work cannot go on; say so instead of waiting for a stall.
      await this.tasks.cancel(task.id, "its session was deleted")
    }
    this.init.forget(id)
    this.registry.forget(id)
  }

  // ----- shutdown -----------------------------------------------------------------------------

  async dispose(): Promise<void> {
    if (this.disposed) return
    this.disposed = true
    if (this.activitySweep) this.deps.timers.clearInterval(this.activitySweep)
    this.tasks.dispose()
    this.questions.dispose()
    this.jobs.dispose()
    this.messenger.dispose()
    this.deliverer.dispose()
    await this.toolLog.flush()
    await this.tags.flush()
    await this.telemetryFiles.flush()
    await this.otel?.shutdown()
    await this.journal.close()
  }
}
