import type { Deps } from "../deps.js"
import type { LiveState } from "../journal/state.js"
import { IdPrefix, TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type Envelope, type JournalEvent, type Task, type Workflow, type WorkflowPhase } from "../protocol.js"
import type { Outgoing } from "../router/outbox.js"
import { TaskError, type DelegateInput, type TaskManager } from "../tasks/manager.js"
import { artifactsOf, disagreementsOf, planRun, type PlannedStep, type RunPlan } from "./plan.js"
import type { Team } from "./team.js"

/**
 * Team runs on top of the task machinery. A run is a journaled record (phase, handoffs, result)
 * over ordinary tasks that carry its id: starting one starts the tasks its pattern's plan names;
 * the tasks' own lifecycle (slots, dependencies, cancel, restart) does the rest. The runner
 * listens for its members' ends to move the phase, record handoffs, escalate, and report the run
 * once to whoever started it.
 */

export interface RunnerPorts {
  state: LiveState
  write(event: JournalEvent): Promise<void>
  post(msg: Outgoing): Promise<Envelope>
  tasks: TaskManager
  /** The loaded teams, by name. */
  teams(): ReadonlyMap<string, Team>
  /** The shared project context (goal, status, notes) as text, when there is one. */
  projectContext?(): Promise<string | undefined>
  /** For `agent: "auto"`: the agent best suited to this task, and why (telemetry, then rules). */
  choose?(task: string): Promise<{ agent: string; why: string }>
}

export interface RunnerOptions {
  /** Most characters of one member's result quoted in a joined team result. */
  memberResultChars: number
}

export interface RunInput {
  team: string
  goal: string
  /** The session that starts the run; its one result goes there. */
  parentSessionId: string
  /** An agent name, or `user` (the /team command, the CLI). */
  startedBy: string
  title?: string
  priority?: DelegateInput["priority"]
}

export type Delegated = { kind: "task"; task: Task; chosen?: { agent: string; why: string } } | { kind: "run"; run: Workflow; plan: RunPlan }

export class TeamRunner {
  private finishing = new Set<string>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "ids" | "log">,
    private readonly opts: RunnerOptions,
    private readonly ports: RunnerPorts,
  ) {
    ports.tasks.onEnded((t) => {
      if (t.workflow) void this.memberEnded(t).catch((err) => deps.log.log("error", "team run bookkeeping failed", { run: t.workflow?.id, task: t.id, error: String(err) }))
    })
  }

  /** The session the user talks in, above a run (a sub-team run's is its top run's). */
  rootSessionOf(run: Workflow): string {
    return this.rootOf(run).parentSessionId
  }

  get(id: string): Workflow | undefined {
    return this.ports.state.workflows.get(id)
  }

  /** Team runs started from this session that have not ended. */
  liveFrom(sessionId: string): number {
    let n = 0
    for (const w of this.ports.state.workflows.values()) if (w.parentSessionId === sessionId && !TERMINAL_PHASES.has(w.phase)) n++
    return n
  }

  /** The run's tasks, in the order they were created. */
  tasksOf(id: string): Task[] {
    return [...this.ports.state.tasks.values()].filter((t) => t.workflow?.id === id).sort((a, b) => a.createdAt - b.createdAt)
  }

  /** Whether a session is a coordinator that hears its members' results only together. */
  gathers(sessionId: string): boolean {
    const t = this.ports.tasks.bySessionId(sessionId)
    if (t?.workflow?.step !== "coordinator") return false
    const w = this.get(t.workflow.id)
    return !!w && (this.ports.teams().get(w.team)?.rules.wait_for_all ?? true)
  }

  /**
   * What `delegate` does with a name: a team starts a run; an agent starts a task. A team's
   * coordinator may delegate only to its team's members, and what it starts joins its run.
   */
  async delegate(input: DelegateInput, startedBy: string): Promise<Delegated> {
    if (input.agent === "auto") {
      if (!this.ports.choose) throw new TaskError('agent "auto" is not available here: name the agent.')
      const chosen = await this.ports.choose(`${input.title ?? ""}\n${input.prompt}`)
      const d = await this.delegate({ ...input, agent: chosen.agent }, startedBy)
      return d.kind === "task" ? { ...d, chosen } : d
    }
    const caller = this.ports.tasks.bySessionId(input.parentSessionId)
    const lead = caller?.workflow?.step === "coordinator" ? this.get(caller.workflow.id) : undefined
    const team = lead && !TERMINAL_PHASES.has(lead.phase) ? this.ports.teams().get(lead.team) : undefined
    if (lead && team) {
      const member = team.members.find((m) => (m.agent ?? m.team) === input.agent)
      if (!member)
        throw new TaskError(`You coordinate team "${team.name}": delegate only to its members — ${team.members.map((m) => m.agent ?? m.team).join(", ")}. "${input.agent}" is not one of them.`)
      if (lead.phase === "delegation") await this.setPhase(lead, "parallel_execution")
      if (member.team) return this.start({ team: member.team, goal: input.prompt, parentSessionId: input.parentSessionId, startedBy, title: input.title, priority: input.priority }, lead)
      const task = await this.ports.tasks.delegate({
        ...input,
        timeoutMs: team.rules.timeout_per_agent_ms,
        maxTurns: team.rules.max_turns_per_agent,
        workflow: { id: lead.id, step: `member:${input.agent}`, ...(member.role ? { role: member.role } : {}), report: "parent", ...(team.rules.max_parallel ? { parallel: team.rules.max_parallel } : {}) },
      })
      return { kind: "task", task }
    }
    if (this.ports.teams().has(input.agent)) {
      if (input.scope?.length) throw new TaskError(`scope applies to one agent; team "${input.agent}" runs several. Leave scope out, or delegate to one agent with it.`)
      if (input.dependsOn?.length) throw new TaskError(`depends_on is not supported for a team run yet: delegate the team once "${input.dependsOn.join(", ")}" has finished.`)
      return this.start({ team: input.agent, goal: input.prompt, parentSessionId: input.parentSessionId, startedBy, title: input.title, priority: input.priority })
    }
    return { kind: "task", task: await this.ports.tasks.delegate(input) }
  }

  /** Starts a run: journals it, then starts the tasks its plan names. Returns before any model call. */
  async start(input: RunInput, parent?: Workflow): Promise<Delegated & { kind: "run" }> {
    const teams = this.ports.teams()
    const team = teams.get(input.team)
    if (!team) throw new TaskError(`No team "${input.team}". Teams: ${[...teams.keys()].join(", ") || "(none loaded)"}.`)
    if (!input.goal.trim()) throw new TaskError("The goal is empty: say what the team should achieve.")
    const depth = parent ? parent.depth + 1 : 1
    const top = parent ? this.rootOf(parent) : undefined
    const limit = top ? (teams.get(top.team)?.rules.max_depth ?? 2) : Infinity
    if (depth - 1 > limit)
      throw new TaskError(`Sub-teams nest too deep here (${depth - 1} levels under team "${top!.team}", whose max_depth is ${limit}). Delegate to an agent instead.`)
    const now = this.deps.clock.now()
    const id = this.deps.ids.id(IdPrefix.workflow)
    const context = await this.ports.projectContext?.().catch(() => undefined)
    const plan = planRun(team, input.goal, id, context)
    const run: Workflow = {
      id,
      team: team.name,
      pattern: team.pattern,
      goal: input.goal,
      title: (input.title ?? input.goal.split("\n")[0]!).slice(0, 80),
      parentSessionId: input.parentSessionId,
      ...(parent ? { parentWorkflowId: parent.id } : {}),
      depth,
      phase: plan.resultStep === "coordinator" ? "delegation" : "parallel_execution",
      startedBy: input.startedBy,
      handoffs: [],
      createdAt: now,
      updatedAt: now,
    }
    await this.ports.write({ type: "workflow.created", workflow: run })
    try {
      await this.materialize(run, plan, team, input.priority)
    } catch (err) {
      await this.cancel(run.id, `it could not start: ${(err as Error).message}`, { tell: false })
      throw err
    }
    return { kind: "run", run: this.get(id)!, plan }
  }

  /** Starts the plan's steps that have no task yet (all of them, or what a crash left out). */
  private async materialize(run: Workflow, plan: RunPlan, team: Team, priority?: DelegateInput["priority"]): Promise<void> {
    const have = new Map(this.tasksOf(run.id).map((t) => [t.workflow!.step, t]))
    // In waves: every step whose predecessors exist starts together (one group commit, and the
    // members of a parallel team start at the same moment rather than one journal sync apart).
    for (;;) {
      const ready = plan.steps.filter((s) => !have.has(s.step) && s.after.every((a) => have.has(a)))
      if (!ready.length) return
      const tasks = await Promise.all(ready.map((s) => this.startStep(run, s, team, have, priority)))
      ready.forEach((s, i) => have.set(s.step, tasks[i]!))
    }
  }

  private startStep(run: Workflow, s: PlannedStep, team: Team, have: ReadonlyMap<string, Task>, priority?: DelegateInput["priority"]): Promise<Task> {
    const isMember = s.step.startsWith("member:")
    return this.ports.tasks.delegate({
      parentSessionId: run.parentSessionId,
      agent: s.agent,
      prompt: s.prompt,
      title: s.title,
      priority,
      dependsOn: s.after.map((a) => have.get(a)!.id),
      acceptPartial: s.after.length > 0,
      // A member's limits are its own work's; a coordinator's time includes waiting for members.
      ...(isMember ? { timeoutMs: team.rules.timeout_per_agent_ms, maxTurns: team.rules.max_turns_per_agent } : {}),
      workflow: { id: run.id, step: s.step, ...(s.role ? { role: s.role } : {}), report: s.report, ...(isMember && team.rules.max_parallel ? { parallel: team.rules.max_parallel } : {}) },
    })
  }

  private rootOf(w: Workflow): Workflow {
    let cur = w
    for (let p = cur.parentWorkflowId && this.get(cur.parentWorkflowId); p; p = p.parentWorkflowId && this.get(p.parentWorkflowId)) cur = p
    return cur
  }

  // ----- members ending -----------------------------------------------------------------------

  private async memberEnded(t: Task): Promise<void> {
    const run = this.get(t.workflow!.id)
    if (!run || TERMINAL_PHASES.has(run.phase)) return
    const team = this.ports.teams().get(run.team)
    const plan = team ? planRun(team, run.goal, run.id) : undefined
    const tasks = this.tasksOf(run.id)
    const byStep = new Map(tasks.map((x) => [x.workflow!.step, x]))

    // Sequential: record the handoff to the member that builds on this one.
    if (run.pattern === "sequential" && plan) {
      const next = plan.steps.find((s) => s.after.includes(t.workflow!.step))
      const to = next && byStep.get(next.step)
      if (to) await this.ports.write({ type: "workflow.handoff", id: run.id, handoff: { from: t.id, to: to.id, fromAgent: t.agent, toAgent: to.agent, artifacts: artifactsOf(t.result), at: this.deps.clock.now() } })
    }
    const isResult = plan?.resultStep === t.workflow!.step
    if (t.status === "failed" && !isResult && team?.rules.escalation === "on_failure") {
      await this.ports.post({
        source: "agent",
        from: run.team,
        to: "user",
        kind: "escalation",
        workflowId: run.id,
        sessionId: this.rootOf(run).parentSessionId,
        text: `Team "${run.team}" (run ${run.id}): member ${t.agent}${t.workflow!.role ? ` (${t.workflow!.role})` : ""} failed — ${t.error ?? "no details"}. The run goes on without it; its result will be marked partial. Tell the user, and ask whether to re-run that member.`,
      })
    }
    await this.settle(run, plan, tasks)
  }

  /** Moves the run to synthesis once every member (task or sub-team run) ended, and finishes it once its final steps did. */
  private async settle(run: Workflow, plan: RunPlan | undefined, tasks: Task[]): Promise<void> {
    const byStep = new Map(tasks.map((x) => [x.workflow!.step, x]))
    const ended = (x: Task | undefined) => !!x && TERMINAL_TASK_STATUSES.has(x.status)
    const members = tasks.filter((x) => x.workflow!.step.startsWith("member:"))
    const subs = this.subRunsOf(run.id)
    const synth = plan?.resultStep && !plan.resultStep.startsWith("member:") ? byStep.get(plan.resultStep) : undefined
    if (synth && !ended(synth) && members.length + subs.length > 0 && members.every(ended) && subs.every((w) => TERMINAL_PHASES.has(w.phase)) && run.phase !== "synthesis")
      await this.setPhase(run, "synthesis")
    // The steps whose ends the run reports; when every step reports on its own, all of them.
    const reported = plan?.steps.filter((s) => s.report === "workflow") ?? []
    const finals = plan ? (reported.length ? reported : plan.steps).map((s) => byStep.get(s.step)) : tasks
    if (finals.every(ended)) await this.finish(run, plan, tasks)
  }

  private subRunsOf(id: string): Workflow[] {
    return [...this.ports.state.workflows.values()].filter((w) => w.parentWorkflowId === id)
  }

  private async finish(run: Workflow, plan: RunPlan | undefined, tasks: Task[]): Promise<void> {
    if (this.finishing.has(run.id) || TERMINAL_PHASES.has(this.get(run.id)?.phase ?? "completed")) return
    this.finishing.add(run.id)
    try {
      const byStep = new Map(tasks.map((x) => [x.workflow!.step, x]))
      const lead = plan?.resultStep ? byStep.get(plan.resultStep) : undefined
      const team = this.ports.teams().get(run.team)
      // Every member: its own tasks, and each sub-team run as one member.
      const members: Contribution[] = [
        ...tasks.filter((x) => x !== lead).map((x) => ({ name: x.agent, role: x.workflow?.role, ok: x.status === "completed", cancelled: x.status === "cancelled", note: x.status === "completed" ? "done" : `${x.status} — ${x.error ?? "no details"}`, result: x.result })),
        ...this.subRunsOf(run.id).map((w) => ({
          name: `team ${w.team}`,
          role: team?.members.find((m) => m.team === w.team)?.role,
          ok: w.phase === "completed",
          cancelled: w.phase === "cancelled",
          note: w.phase === "completed" ? "done" : w.phase,
          result: undefined,
        })),
      ]
      const missing = members.filter((x) => !x.ok)
      const phase: WorkflowPhase = lead
        ? lead.status === "completed"
          ? !missing.length
            ? "completed"
            : missing.length < members.length
              ? "partial"
              : "failed"
          : lead.status === "cancelled"
            ? "cancelled"
            : "failed"
        : members.every((x) => x.cancelled)
          ? "cancelled"
          : !missing.length
            ? "completed"
            : missing.length < members.length
              ? "partial"
              : "failed"
      const now = this.deps.clock.now()
      const secs = Math.max(0, Math.round((now - run.createdAt) / 100) / 10)
      const contributions = members.map((x) => `- ${x.name}${x.role ? ` (${x.role})` : ""}: ${x.note}`)
      const reportedAlone = !!plan && plan.steps.every((s) => s.report === "parent")
      const body = lead
        ? lead.status === "completed"
          ? (lead.result ?? "")
          : `The ${lead.agent} that was to synthesise ended ${lead.status}: ${lead.error ?? "no details"}.`
        : reportedAlone
          ? "Each member's result was delivered on its own as it arrived."
          : members
              .filter((x) => x.ok)
              .map((x) => `## ${x.name}${x.role ? ` (${x.role})` : ""}\n${cut(x.result ?? "", this.opts.memberResultChars)}`)
              .join("\n\n")
      const text = [
        `Team "${run.team}" (${run.pattern.replace("_", "-")}) ${phase}${phase === "partial" ? ` — ${missing.length} of ${members.length} member(s) gave no result` : ""}, ${secs} s. Members:`,
        ...contributions,
        ...(run.handoffs.length ? [`Handoffs: ${run.handoffs.map((h) => `${h.fromAgent} → ${h.toAgent}${h.artifacts.length ? ` (${h.artifacts.join(", ")})` : ""}`).join("; ")}`] : []),
        "",
        body,
      ].join("\n")
      await Promise.all([
        this.ports.write({ type: "workflow.updated", id: run.id, patch: { phase, endedAt: now, result: text } }),
        phase === "cancelled"
          ? Promise.resolve()
          : this.ports.post({
              source: "agent",
              from: run.team,
              to: run.parentWorkflowId ? "coordinator" : "oracle",
              kind: phase === "failed" ? "failure" : "completion",
              workflowId: run.id,
              sessionId: run.parentSessionId,
              text,
            }),
      ])
      const points = lead?.status === "completed" ? disagreementsOf(lead.result) : []
      if (team?.rules.escalation === "on_disagreement" && points.length)
        await this.ports.post({
          source: "agent",
          from: run.team,
          to: "user",
          kind: "escalation",
          workflowId: run.id,
          sessionId: this.rootOf(run).parentSessionId,
          text: `Team "${run.team}" (run ${run.id}) members disagree — the user should decide:\n${points.map((p) => `- ${p}`).join("\n")}\nAsk the user which way to go.`,
        })
    } finally {
      this.finishing.delete(run.id)
    }
    // A sub-team ending may be what its parent run waited for (its synthesis phase).
    const parent = run.parentWorkflowId ? this.get(run.parentWorkflowId) : undefined
    if (parent && !TERMINAL_PHASES.has(parent.phase)) {
      const pt = this.ports.teams().get(parent.team)
      await this.settle(parent, pt && planRun(pt, parent.goal, parent.id), this.tasksOf(parent.id))
    }
  }

  private async setPhase(run: Workflow, phase: WorkflowPhase): Promise<void> {
    await this.ports.write({ type: "workflow.updated", id: run.id, patch: { phase } })
  }

  // ----- cancel and restart -------------------------------------------------------------------

  /**
   * Cancels every task of the run and of its sub-team runs, deepest first (each task's cancel
   * takes what it started with it), and tells the session that started it — unless the caller
   * says it (`tell: false`).
   */
  async cancel(id: string, reason: string, opts: { tell?: boolean } = {}): Promise<Task[]> {
    const run = this.get(id)
    if (!run) throw new TaskError(`No team run "${id}". The tasks tool lists runs and their ids.`)
    if (TERMINAL_PHASES.has(run.phase)) return []
    const runs = [run, ...this.subRuns(id)]
    const live = runs.flatMap((r) => this.tasksOf(r.id)).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    live.sort((a, b) => b.depth - a.depth)
    const out: Task[] = []
    for (const t of live) if (!TERMINAL_TASK_STATUSES.has(this.ports.tasks.get(t.id)!.status)) out.push(...(await this.ports.tasks.cancel(t.id, reason, { tell: false })))
    const now = this.deps.clock.now()
    for (const r of runs.reverse()) if (!TERMINAL_PHASES.has(this.get(r.id)!.phase)) await this.ports.write({ type: "workflow.updated", id: r.id, patch: { phase: "cancelled", endedAt: now, result: `cancelled: ${reason}` } })
    if (opts.tell !== false)
      await this.ports.post({
        source: "system",
        from: "nso",
        to: "oracle",
        kind: "status",
        workflowId: id,
        sessionId: run.parentSessionId,
        text: `Team run ${id} ("${run.team}": ${run.title}) was cancelled: ${reason}; ${out.length} task(s) stopped.`,
      })
    return out
  }

  private subRuns(id: string): Workflow[] {
    const kids = [...this.ports.state.workflows.values()].filter((w) => w.parentWorkflowId === id)
    return kids.flatMap((k) => [k, ...this.subRuns(k.id)])
  }

  /**
   * After a restart (tasks already recovered): a run whose plan was only partly started gets the
   * rest; a run whose members all ended while NSO was down reports now.
   */
  async recover(): Promise<void> {
    for (const run of [...this.ports.state.workflows.values()]) {
      if (TERMINAL_PHASES.has(run.phase)) continue
      const team = this.ports.teams().get(run.team)
      if (!team) {
        this.deps.log.log("warn", "a team run's team is no longer defined; its tasks go on, the run cannot report", { run: run.id, team: run.team })
        continue
      }
      const plan = planRun(team, run.goal, run.id)
      await this.materialize(run, plan, team)
      await this.settle(run, plan, this.tasksOf(run.id))
    }
  }
}

/** A member's part in a run's result: one of its tasks, or a sub-team run. */
interface Contribution {
  name: string
  role?: string
  ok: boolean
  cancelled: boolean
  note: string
  result?: string
}

function cut(s: string, n: number): string {
  return s.length <= n ? s : `${s.slice(0, n)}\n… [cut: ${s.length - n} more characters; the tasks tool with the member's task id shows all]`
}

