import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type Task, type Workflow } from "../protocol.js"
import { TaskError } from "../tasks/manager.js"
import { rootSession, type TaskTable } from "../tasks/tree.js"

/**
 * Who a message is for, decided from what the sender wrote in `to` and where the sender stands:
 * pure over the task table and the team runs. Agents may only reach their own workflow — the
 * tasks of their team run, or (outside teams) the tasks delegated from the same Oracle session.
 */

export interface World {
  tasks: TaskTable
  runs: ReadonlyMap<string, Workflow>
}

/** The sender: a background task, or someone in a session (the Oracle, the user) with no task. */
export interface Sender {
  task?: Task
  /** The sender's session (for a task, its own). */
  sessionId: string
}

export type Target =
  /** One running task: delivered into its session. */
  | { kind: "task"; task: Task }
  /** The session the user talks in (the Oracle). */
  | { kind: "oracle"; sessionId: string }
  /** Everyone else in the workflow (a broadcast). */
  | { kind: "all"; tasks: Task[] }

/** The top team run a task belongs to (sub-team runs share their parent's workflow). */
function topRun(world: World, id: string): Workflow | undefined {
  let w = world.runs.get(id)
  for (let i = 0; w?.parentWorkflowId && i < 20; i++) w = world.runs.get(w.parentWorkflowId) ?? w
  return w
}

/** The workflow a task belongs to: its top team run's id, or the Oracle session at the top of its tree. */
export function workflowOf(world: World, task: Task): string {
  if (task.workflow) return topRun(world, task.workflow.id)?.id ?? task.workflow.id
  return rootSession(world.tasks, task)
}

/** The workflow of a sender: a task's, or (the Oracle, the user) the tasks of that session's tree. */
export function senderWorkflow(world: World, from: Sender): string {
  return from.task ? workflowOf(world, from.task) : from.sessionId
}

/** Every task of a workflow, live or not. */
export function members(world: World, workflow: string): Task[] {
  const out: Task[] = []
  for (const t of world.tasks.values()) if (workflowOf(world, t) === workflow) out.push(t)
  return out
}

const live = (t: Task) => !TERMINAL_TASK_STATUSES.has(t.status)

function finished(t: Task): TaskError {
  return new TaskError(
    `Task ${t.id} (${t.agent}: "${t.title}") already ended ${t.status}; it cannot receive messages. Its result: tasks with id "${t.id}". To go on with its work, delegate a follow-up task that says what to change.`,
  )
}

/**
 * Resolves `to`: an agent name or task id of the sender's workflow, `coordinator`, `oracle`, or
 * `*`. Errors say what was wrong and who can be reached, for the model to act on.
 */
export function resolve(world: World, from: Sender, to: string): Target {
  const wf = senderWorkflow(world, from)
  // The Oracle and the person reach every task of their session's tree, team runs included.
  const mine = from.task ? members(world, wf) : [...world.tasks.values()].filter((t) => rootSession(world.tasks, t) === from.sessionId)
  const others = mine.filter((t) => t.id !== from.task?.id)
  const reachable = () => {
    const names = [...new Set(others.filter(live).map((t) => `${t.agent} (${t.id})`))]
    return `You can reach: ${[...names, "coordinator", "oracle", "*"].join(", ")}.`
  }
  const name = to.trim()
  if (!name) throw new TaskError(`"to" is empty. ${reachable()}`)
  if (name === "oracle" || name === "user") return { kind: "oracle", sessionId: from.task ? rootSession(world.tasks, from.task) : from.sessionId }
  if (name === "*") return { kind: "all", tasks: others.filter(live) }
  if (name === "coordinator") {
    const lead = coordinatorOf(world, from.task)
    if (lead) return { kind: "task", task: lead }
    return { kind: "oracle", sessionId: from.task ? rootSession(world.tasks, from.task) : from.sessionId }
  }
  if (name.startsWith("wf_")) {
    const run = world.runs.get(name)
    const of = (id: string): Task[] => [
      ...mine.filter((t) => t.workflow?.id === id),
      ...[...world.runs.values()].filter((w) => w.parentWorkflowId === id).flatMap((w) => of(w.id)),
    ]
    const tasks = run ? of(run.id) : []
    if (!run || !tasks.length) throw new TaskError(`No team run "${name}" in your workflow. ${reachable()}`)
    const running = tasks.filter(live)
    if (!running.length) throw new TaskError(`Team run ${name} ("${run.team}") already ended (${run.phase}); nobody in it can receive messages. Its result: tasks with id "${name}". Start a new run to go on.`)
    return { kind: "all", tasks: running }
  }
  if (name.startsWith("tsk_")) {
    const t = world.tasks.get(name)
    if (!t || !mine.includes(t)) throw new TaskError(`No task "${name}" in your workflow. ${reachable()}`)
    if (t.id === from.task?.id) throw new TaskError(`"${name}" is you. ${reachable()}`)
    if (!live(t)) throw finished(t)
    return { kind: "task", task: t }
  }
  const named = others.filter((t) => t.agent === name)
  const running = named.filter(live)
  if (running.length === 1) return { kind: "task", task: running[0]! }
  if (running.length > 1) throw new TaskError(`Several ${name} tasks run: ${running.map((t) => `${t.id} ("${t.title}")`).join(", ")}. Use the task id as "to".`)
  if (named.length) throw finished(named[named.length - 1]!)
  throw new TaskError(`No agent "${name}" in your workflow. ${reachable()}`)
}

/**
 * Whoever coordinates the sender: its team run's coordinator (or the synthesis step), else the
 * task that delegated it. None: the Oracle.
 */
export function coordinatorOf(world: World, task: Task | undefined): Task | undefined {
  if (!task) return undefined
  if (task.workflow) {
    let run: Workflow | undefined = world.runs.get(task.workflow.id)
    for (let i = 0; run && i < 20; i++) {
      // A synthesis step that has not started (it waits for the members) cannot hear anyone yet.
      const lead = [...world.tasks.values()].find(
        (t) => t.workflow?.id === run!.id && (t.workflow.step === "coordinator" || t.workflow.step === "synthesis") && t.id !== task.id && live(t) && !!t.sessionId && t.status !== "queued",
      )
      if (lead) return lead
      if (!run.parentWorkflowId || TERMINAL_PHASES.has(run.phase)) break
      run = world.runs.get(run.parentWorkflowId)
    }
  }
  const parent = task.parentTaskId ? world.tasks.get(task.parentTaskId) : undefined
  return parent && live(parent) ? parent : undefined
}
