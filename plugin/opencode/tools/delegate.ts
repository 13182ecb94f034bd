import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import type { ToolResult } from "@opencode-ai/plugin"
import { TERMINAL_TASK_STATUSES, type Task } from "../../protocol.js"
import { TaskError } from "../../tasks/manager.js"
import { usageLine } from "../../tasks/usage.js"
import { defineTool, type Call } from "./define.js"
import { endedWithin } from "./wait.js"

const z = tool.schema

/**
 * Agent names for a description that is paid for on every request: families that share a prefix
 * are written once (`review-{security,performance}`).
 */
export function compactNames(names: readonly string[]): string {
  const families = new Map<string, string[]>()
  for (const n of names) {
    const i = n.indexOf("-")
    const key = i > 0 ? n.slice(0, i) : n
    families.set(key, [...(families.get(key) ?? []), n])
  }
  return [...families.entries()]
    .map(([prefix, ns]) => (ns.length > 1 && ns.every((n) => n.startsWith(prefix + "-")) ? `${prefix}-{${ns.map((n) => n.slice(prefix.length + 1)).join(",")}}` : ns.join(", ")))
    .join(", ")
}

/** Hands work to a background agent; returns the task id at once. */
export function delegateTool(rt: Runtime) {
  return defineTool("delegate", {
    description: `Background work: id now, result later as an [NSO] message. Agents (or auto): ${compactNames([...rt.catalogue.delegatable().keys()])}${rt.teams.size ? `. Teams: ${compactNames([...rt.teams.keys()])}` : ""}`,
    args: {
      agent: z.string(),
      prompt: z.string(),
      title: z.string().optional(),
      priority: z.enum(["low", "medium", "high"]).optional(),
      scope: z.array(z.string()).optional().describe("Writable path globs"),
      depends_on: z.array(z.string()).optional().describe("Task ids to finish first"),
      wait: z.boolean().optional().describe("Return the result here"),
      max_tokens: z.number().optional(),
      max_turns: z.number().optional(),
    },
    async run(args, call) {
      // Checked here, not as `.int().positive()` in the schema: those constraints would be paid in
      // bytes on every request, and a wrong value is rare and answered just as clearly.
      for (const k of ["max_tokens", "max_turns"] as const)
        if (args[k] !== undefined && !(Number.isInteger(args[k]) && args[k]! > 0)) throw new TaskError(`${k} must be a positive whole number; got ${args[k]}. Leave it out to use the configured limit.`)
      const d = await rt.runs.delegate(
        {
          parentSessionId: call.sessionId,
          agent: args.agent,
          prompt: args.prompt,
          title: args.title,
          priority: args.priority,
          scope: args.scope,
          dependsOn: args.depends_on,
          ...(args.max_tokens ? { maxTokens: args.max_tokens } : {}),
          ...(args.max_turns ? { maxTurns: args.max_turns } : {}),
        },
        call.agent,
      )
      if (d.kind === "run") {
        const r = d.run
        const members = d.plan.steps.map((s) => s.agent)
        const who = d.plan.resultStep === "coordinator" ? `coordinator ${members[0]}, members ${d.plan.delegatesTo.join(", ")}` : members.join(r.pattern === "sequential" ? " → " : ", ")
        const title = `team ${r.team}: ${r.title} · ${r.id} · in the background (/nso-status shows it)`
        call.show(title, { workflowId: r.id })
        return {
          title,
          output: `Started team run ${r.id} (${r.team}, ${r.pattern.replace("_", "-")}: ${who}). Keep talking with the user; the team's one result will arrive as an [NSO · ${r.team} · run ${r.id}] message. tasks with id "${r.id}" shows its members; cancel: true stops all of them.`,
          metadata: { workflowId: r.id, team: r.team, phase: r.phase },
        }
      }
      const t = d.task
      if (args.wait ?? rt.options.tasks.mode === "sync") return waitFor(rt, t, call)
      const chosen = d.chosen ? ` Chose ${d.chosen.agent}: ${d.chosen.why}.` : ""
      // The new task joins the queue on the next tick: these counts are what is ahead of it.
      const full = rt.tasks.busySlots(t.agent) >= rt.options.tasks.concurrency
      const ahead = rt.tasks.waitingFor(t.agent)
      const queued = t.dependsOn.length
        ? ` It starts after ${t.dependsOn.join(", ")}.`
        : full
          ? ` It is queued behind ${rt.options.tasks.concurrency} running task(s) for the same model${ahead ? ` and ${ahead} waiting` : ""}.`
          : ""
      const title = `${t.agent}: ${t.title} · ${t.id} · in the background (ctrl+x ↓ shows it, /nso-status the board)`
      call.show(title, { taskId: t.id })
      return {
        title,
        output: `Started task ${t.id} (${t.agent}: "${t.title}").${chosen}${queued} Keep talking with the user; the result will arrive as an [NSO · ${t.agent} · task ${t.id}] message.`,
        metadata: { taskId: t.id, agent: t.agent, status: t.status },
      }
    },
  })
}

/**
 * The synchronous fallback (`wait: true`, or `tasks.mode: sync`): the call returns the task's
 * result itself, and the result is not delivered a second time. Bounded by `tasks.syncWaitMs`:
 * past it, or if the user stops the reply, the task goes on in the background as usual.
 */
async function waitFor(rt: Runtime, task: Task, call: Call): Promise<ToolResult> {
  const claim = rt.tasks.claimResult(task.id)
  const title = `${task.agent}: ${task.title} · ${task.id} · waiting for its result`
  call.show(title, { taskId: task.id })
  const t = await endedWithin(rt, task.id, rt.options.tasks.syncWaitMs, call.signal)
  if (!TERMINAL_TASK_STATUSES.has(t.status)) {
    await claim.release()
    return { title: `${task.agent}: ${task.title} · ${task.id} · in the background`, output: `Task ${t.id} (${t.agent}) is still ${t.status} after ${Math.round(rt.options.tasks.syncWaitMs / 1000)} s of waiting${call.signal.aborted ? " (the reply was stopped)" : ""}; it goes on in the background and its result will arrive as an [NSO · ${t.agent} · task ${t.id}] message.`, metadata: { taskId: t.id, status: t.status } }
  }
  rt.tasks.resultTaken(t.id)
  const spent = t.usage ? `\n\n(${usageLine(t.usage)})` : ""
  const output = t.status === "completed" ? `Task ${t.id} (${t.agent}: "${t.title}") completed.\n\n${t.result ?? ""}${spent}` : `Task ${t.id} (${t.agent}: "${t.title}") ended ${t.status}: ${t.error ?? "no details"}${t.result ? `\n\nPartial result:\n${t.result}` : ""}${spent}`
  return { title: `${task.agent}: ${task.title} · ${task.id} · ${t.status}`, output, metadata: { taskId: t.id, status: t.status } }
}
