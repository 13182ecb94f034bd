import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { boardText } from "../../tasks/board.js"
import { TERMINAL_TASK_STATUSES } from "../../protocol.js"
import { Handled } from "./guard.js"

type CommandHook = NonNullable<Hooks["command.execute.before"]>

/**
 * NSO's slash commands. `/nso-status` and `/nso-cancel` answer in the transcript without a
 * model turn: the answer is stored as a visible NSO message and the command is then stopped
 * (OpenCode has no "no reply" for commands; stopping it is the only way not to call the model).
 * `/answer` passes the answer on and lets the Oracle acknowledge it; a failed `/answer` is shown
 * the same way, so the user sees it, not only the model.
 */
export function commandHook(rt: Runtime): CommandHook {
  const show = async (sessionId: string, text: string, variant: "info" | "error" = "info"): Promise<never> => {
    await rt.deps.host.inject(sessionId, { text: `[NSO · system]\n${text}`, meta: { source: "system", from: "nso", kind: "status", ids: [] }, noReply: true })
    void rt.deps.host.toast((text.split("\n").find((l) => l.trim()) ?? "").slice(0, 200), variant).catch(() => {})
    throw new Handled(text)
  }
  return async (input, output) => {
    if (input.command === "nso-status") {
      await show(input.sessionID, boardText({ tasks: rt.state.tasks, questions: rt.state.questions.values(), pending: (sid) => rt.deliverer.pending(sid), here: input.sessionID, now: rt.deps.clock.now(), runs: rt.state.workflows.values() }))
    }
    if (input.command === "team") {
      const m = /^\s*(\S+)\s+([\s\S]*\S)\s*$/.exec(input.arguments)
      const names = [...rt.teams.keys()].join(", ") || "(none loaded)"
      if (!m) await show(input.sessionID, `/team needs a team and a goal, like: /team code-review review the changes in src/auth. Teams: ${names}.`, "error")
      try {
        const { run, plan } = await rt.runs.start({ team: m![1]!, goal: m![2]!, parentSessionId: input.sessionID, startedBy: "user" })
        await show(input.sessionID, `Started team run ${run.id}: ${run.team} (${run.pattern.replace("_", "-")}; ${plan.steps.map((s) => s.agent).join(", ")}${plan.delegatesTo.length ? ` → ${plan.delegatesTo.join(", ")}` : ""}). Its one result arrives here when it ends; /nso-status shows its members, /nso-cancel ${run.id} stops it.`)
      } catch (err) {
        if (err instanceof Handled) throw err
        await show(input.sessionID, `/team failed: ${(err as Error).message}`, "error")
      }
    }
    if (input.command === "tell") {
      const m = /^\s*(\S+)\s+([\s\S]*\S)\s*$/.exec(input.arguments)
      if (!m) await show(input.sessionID, "/tell needs a task (or team run) id and the text, like: /tell tsk_abc123 use Postgres, not SQLite. /nso-status lists the ids.", "error")
      try {
        const r = await rt.tell(m![1]!, m![2]!, "user (/tell)")
        await show(input.sessionID, `Told ${r.to}: "${m![2]!.slice(0, 120)}" — ${r.outcome === "queued" ? "it reads it at its next turn, marked as from you" : r.outcome}.`)
      } catch (err) {
        if (err instanceof Handled) throw err
        await show(input.sessionID, `/tell failed: ${(err as Error).message}`, "error")
      }
    }
    if (input.command === "nso-cancel" && input.arguments.trim().startsWith("wf_")) {
      const id = input.arguments.trim()
      const run = rt.runs.get(id)
      if (!run) await show(input.sessionID, `No team run "${id}". /nso-status lists them.`, "error")
      const gone = await rt.runs.cancel(id, "cancelled by the user (/nso-cancel)", { tell: false })
      await show(input.sessionID, gone.length ? `Cancelled team run ${id} (${run!.team}): ${gone.map((t) => `${t.id} (${t.agent})`).join(", ")}.` : `Team run ${id} had already ended (${run!.phase}).`)
    }
    if (input.command === "nso-cancel-all" || (input.command === "nso-cancel" && input.arguments.trim() === "all")) {
      const { tasks, runs, jobs } = await rt.cancelAll(input.sessionID, `cancelled by the user (/${input.command}${input.arguments.trim() ? ` ${input.arguments.trim()}` : ""})`)
      await show(
        input.sessionID,
        tasks.length || runs.length || jobs.length
          ? `Stopped all background work of this session: ${runs.length ? `team run(s) ${runs.join(", ")}; ` : ""}${tasks.length} task(s)${tasks.length ? ` — ${tasks.map((t) => `${t.id} (${t.agent}: ${t.title})`).join(", ")}` : ""}${jobs.length ? `; job(s) ${jobs.join(", ")}` : ""}.`
          : "Nothing to stop: no background work of this session is running.",
      )
    }
    if (input.command === "nso-cancel") {
      const arg = input.arguments.trim()
      const targets =
        arg === "all"
          ? rt.tasks.tree(input.sessionID).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status) && !t.parentTaskId)
          : arg
            ? [rt.tasks.get(arg)].filter((t) => t !== undefined)
            : []
      if (!arg) await show(input.sessionID, "/nso-cancel needs a task id (see /nso-status) or `all` for every task of this session.", "error")
      if (!targets.length) await show(input.sessionID, arg === "all" ? "Nothing to cancel: no task of this session is running." : `No task "${arg}". /nso-status lists them.`, "error")
      const gone = []
      for (const t of targets) gone.push(...(await rt.tasks.cancel(t.id, "cancelled by the user (/nso-cancel)", { tell: false })))
      await show(input.sessionID, gone.length ? `Cancelled ${gone.map((t) => `${t.id} (${t.agent}: ${t.title})`).join(", ")}.` : `${targets.map((t) => t.id).join(", ")} had already ended.`)
    }
    if (input.command !== "answer") return
    const m = /^\s*(\S+)\s+([\s\S]+)$/.exec(input.arguments)
    if (!m) {
      const open = rt.questions.open()
      await show(input.sessionID, `/answer needs a question id and the answer, like: /answer q_abc123 use PostgreSQL. ${open.length ? `Open questions: ${open.map((q) => `${q.id} (${q.from}: ${q.text})`).join("; ")}` : "There are no open questions."}`, "error")
    }
    let text: string
    try {
      const r = await rt.questions.answer(m![1]!, m![2]!.trim(), "user")
      text = `[NSO · system] The user answered question ${r.question.id} (${r.question.from}: "${r.question.text}") with /answer: "${m![2]!.trim()}". The answer was ${r.delivered}. Acknowledge it in one short sentence.`
    } catch (err) {
      return show(input.sessionID, `/answer failed: ${(err as Error).message}`, "error")
    }
    // OpenCode ignores a replaced array: change it in place.
    output.parts.splice(0, output.parts.length, { type: "text", text, metadata: { nso: { source: "system", from: "nso", kind: "answer", ids: [] } } } as never)
  }
}
