import { tool } from "@opencode-ai/plugin"
import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type Task } from "../../protocol.js"
import type { Runtime } from "../../runtime.js"
import { runLine, taskLine } from "../../tasks/format.js"
import { rolledUp, sessionUsage, usageLine } from "../../tasks/usage.js"
import { TaskError } from "../../tasks/manager.js"
import { defineTool } from "./define.js"
import { endedWithin, within } from "./wait.js"
import { jobLine } from "../../jobs/format.js"

const z = tool.schema

/**
 * One tool for the delegating side's view of its work — list, one task's full result (waiting
 * a bounded time), cancel — because each tool schema is paid for on every request.
 */
export function tasksTool(rt: Runtime) {
  return defineTool("tasks", {
    description: "Tasks, team runs, jobs: list; id → result (waits ≤ wait_ms); cancel: true stops it and all it started; message: tell it something.",
    args: {
      id: z.string().optional(),
      cancel: z.boolean().optional(),
      wait_ms: z.number().optional(),
      message: z.string().optional(),
    },
    async run(args, call) {
      if (!args.id) {
        if (args.cancel || args.message) throw new TaskError(`${args.cancel ? "cancel" : "message"} needs the id of a task or team run. Call tasks without arguments to list them.`)
        return board(rt, call.sessionId)
      }
      if (args.wait_ms !== undefined && !(args.wait_ms >= 0 && args.wait_ms <= 120_000)) throw new TaskError(`wait_ms must be between 0 and 120000 (2 min); got ${args.wait_ms}.`)
      if (args.message && args.id.startsWith("job_")) throw new TaskError(`${args.id} is a shell job: it reads no messages. cancel: true stops it.`)
      if (args.message) {
        const sent = await rt.messenger.send({ sessionId: call.sessionId, from: call.agent, source: "agent", to: args.id, text: args.message })
        return `Message ${sent.id} for ${sent.to}: ${sent.outcome}; it reads it at its next turn, marked as from you (not from the user).`
      }
      if (args.id.startsWith("wf_")) return runView(rt, args.id, args.cancel === true)
      if (args.id.startsWith("job_")) return jobView(rt, args.id, args, call)
      let t = rt.tasks.get(args.id)
      if (!t) throw new TaskError(`No task "${args.id}". Call tasks without an id to list them.`)
      if (args.cancel) {
        if (TERMINAL_TASK_STATUSES.has(t.status)) return `Task ${t.id} already ended ${t.status}; nothing to cancel.`
        const gone = await rt.tasks.cancel(t.id, "cancelled by the Oracle", { tell: false })
        return `Cancelled ${gone.map((x) => `${x.id} (${x.agent})`).join(", ")}.`
      }
      if (!TERMINAL_TASK_STATUSES.has(t.status) && args.wait_ms) t = await endedWithin(rt, t.id, args.wait_ms, call.signal)
      return result(rt, t)
    },
  })
}

function board(rt: Runtime, sessionId: string): string {
  const now = rt.deps.clock.now()
  const open = rt.questions.open()
  const list = rt.tasks.tree(sessionId)
  const jobs = rt.jobs.list(new Set([sessionId, ...list.flatMap((t) => (t.sessionId ? [t.sessionId] : []))]))
  if (!list.length && !jobs.length) return "No background tasks or jobs in this session."
  const active = list.filter((t) => !TERMINAL_TASK_STATUSES.has(t.status)).length
  const runs = [...rt.state.workflows.values()].filter((w) => w.parentSessionId === sessionId).map((w) => runLine(w, rt.runs.tasksOf(w.id), now))
  const spent = sessionUsage(rt.state.tasks, sessionId)
  const jobPart = jobs.length ? [`${jobs.length} job(s), ${jobs.filter((j) => j.status === "running").length} running:`, ...jobs.map((j) => jobLine(j, now))] : []
  const taskPart = list.length ? [`${list.length} task(s), ${active} active:`, ...runs, ...list.map((t) => taskLine(t, now, open.find((q) => q.taskId === t.id)))] : []
  return [...taskPart, ...jobPart, ...(spent.turns ? [`All background work of this session: ${usageLine(spent)}`] : [])].join("\n")
}

/** A shell job: its status and the last lines of its output (after waiting ≤ wait_ms for its end); or cancel it. */
async function jobView(rt: Runtime, id: string, args: { cancel?: boolean; wait_ms?: number }, call: { agent: string; signal: AbortSignal }): Promise<string> {
  const j = rt.jobs.get(id)
  if (!j) throw new TaskError(`No job "${id}". Call tasks without an id to list jobs and tasks.`)
  if (args.cancel) return rt.jobs.cancel(id, `cancelled by ${call.agent}`, { tell: false })
  if (j.status === "running" && args.wait_ms) await within(rt, rt.jobs.ended(id), args.wait_ms, call.signal)
  return rt.jobs.report(id)
}

/** A team run: its line, its members, and its result once it ended; or cancel it. */
async function runView(rt: Runtime, id: string, cancel: boolean): Promise<string> {
  const run = rt.runs.get(id)
  if (!run) throw new TaskError(`No team run "${id}". Call tasks without an id to list runs and tasks.`)
  if (cancel) {
    if (TERMINAL_PHASES.has(run.phase)) return `Team run ${id} already ended (${run.phase}); nothing to cancel.`
    const gone = await rt.runs.cancel(id, "cancelled by the Oracle", { tell: false })
    return `Cancelled team run ${id} (${run.team}): ${gone.map((x) => `${x.id} (${x.agent})`).join(", ") || "no task was still running"}.`
  }
  const now = rt.deps.clock.now()
  const members = rt.runs.tasksOf(id)
  const lines = [runLine(run, members, now), ...members.map((t) => `- ${taskLine(t, now)}`)]
  if (run.result) lines.push("", run.result)
  return lines.join("\n")
}

function result(rt: Runtime, t: Task): string {
  const own = t.usage ? `\nIts own turns: ${usageLine(t.usage)}` : ""
  const all = rolledUp(rt.state.tasks, t.id)
  const withSubs = all.turns !== (t.usage?.turns ?? 0) ? `\nWith the tasks it started: ${usageLine(all)}` : ""
  const retries = (t.retries ?? []).map((r, i) => `\nAutomatic retry ${i + 1} (after ${Math.round(r.delayMs / 1000)} s): ${r.reason}`).join("")
  const facts = `${own}${withSubs}${retries}`
  if (t.status === "completed") return `Task ${t.id} (${t.agent}: "${t.title}") completed.${facts}\n\n${t.result ?? ""}`
  if (TERMINAL_TASK_STATUSES.has(t.status)) return `Task ${t.id} ended ${t.status}: ${t.error ?? "no details"}${facts}${t.result ? `\n\nPartial result:\n${t.result}` : ""}`
  const q = rt.questions.open().find((x) => x.taskId === t.id)
  return `Task ${t.id} is ${t.status}${q ? ` (waiting for an answer to question ${q.id}: ${q.text})` : ""}. No result yet; it will arrive as an [NSO] message.${facts}`

}
