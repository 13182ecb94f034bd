import { join } from "node:path"
import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES } from "../protocol.js"
import type { Runtime } from "../runtime.js"
import { telemetryDir } from "../telemetry/read.js"
import { ActionError, type DashboardSource } from "./app.js"
import { JsonlTail } from "./audit-tail.js"
import { Hub } from "./hub.js"
import { telemetryView } from "./telemetry.js"
import { auditItem, itemsFor, stateItems, taskItem } from "./view.js"

/** Who the dashboard's actions are recorded as coming from. */
export const DASHBOARD_USER = "user (dashboard)"

/** How often running tasks' token counts and the messaging audit are looked at (ms). */
export const REFRESH_MS = 1_000

/**
 * The dashboard over a running NSO: fed by every event `Runtime.write` applies; its actions go
 * through the same calls as the `answer` and `tasks` tools, recorded as the user's via the dashboard.
 */
export function liveSource(rt: Runtime): DashboardSource & { dispose(): void } {
  const hub = new Hub()
  const tokens = (id: string) => rt.telemetry.tokensOf(id)
  for (const item of stateItems(rt.state, tokens)) hub.publish(item)
  const off = rt.onEvent((e) => {
    for (const item of itemsFor(rt.state, e, tokens)) hub.publish(item)
  })
  const audit = new JsonlTail(rt.deps.fs, join(rt.projectDir, rt.options.stateDir, "messages.jsonl"))
  let reading = false
  const refresh = async () => {
    if (reading) return
    reading = true
    try {
      // Token counts come from OpenCode's events, not from the journal: looked at here.
      for (const t of rt.state.tasks.values()) if (!TERMINAL_TASK_STATUSES.has(t.status)) hub.publish(taskItem(rt.state, t, tokens(t.id)))
      for (const r of await audit.read()) {
        const item = auditItem(r)
        if (item) hub.publish(item)
      }
    } catch (err) {
      rt.deps.log.log("warn", "the dashboard could not refresh", { error: String(err) })
    } finally {
      reading = false
    }
  }
  void refresh()
  const timer = rt.deps.timers.setInterval(() => void refresh(), REFRESH_MS, { keepAlive: false })

  return {
    hub,
    about: { project: rt.projectDir, readOnly: false },
    async answer(questionId, text) {
      const r = await rt.questions.answer(questionId, text, DASHBOARD_USER)
      rt.deps.log.log("info", "the user answered from the dashboard", { question: r.question.id, delivered: r.delivered })
      return `Answer to ${r.question.id} recorded: ${r.delivered}.`
    },
    async cancel(id) {
      if (id.startsWith("wf_")) {
        const run = rt.runs.get(id)
        if (!run) throw new ActionError(`No team run "${id}".`, 404)
        if (TERMINAL_PHASES.has(run.phase)) throw new ActionError(`Team run ${id} already ended (${run.phase}); nothing to cancel.`, 409)
        const gone = await rt.runs.cancel(id, `cancelled by ${DASHBOARD_USER}`)
        rt.deps.log.log("info", "the user cancelled a team run from the dashboard", { run: id, tasks: gone.map((t) => t.id) })
        return `Cancelled team run ${id}: ${gone.map((t) => `${t.id} (${t.agent})`).join(", ") || "no task was still running"}.`
      }
      const t = rt.tasks.get(id)
      if (!t) throw new ActionError(`No task "${id}".`, 404)
      if (TERMINAL_TASK_STATUSES.has(t.status)) throw new ActionError(`Task ${id} already ended ${t.status}; nothing to cancel.`, 409)
      const gone = await rt.tasks.cancel(id, `cancelled by ${DASHBOARD_USER}`)
      rt.deps.log.log("info", "the user cancelled a task from the dashboard", { tasks: gone.map((t) => t.id) })
      return `Cancelled ${gone.map((x) => `${x.id} (${x.agent})`).join(", ")}.`
    },
    telemetry: () => telemetryView(rt.deps, telemetryDir(rt.projectDir, rt.options.stateDir), rt.deps.clock.now()),
    dispose() {
      off()
      rt.deps.timers.clearInterval(timer)
    },
  }
}
