import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { defineTool } from "./define.js"

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
    },
    async run(args, call) {
      const d = await rt.runs.delegate(
        {
          parentSessionId: call.sessionId,
          agent: args.agent,
          prompt: args.prompt,
          title: args.title,
          priority: args.priority,
          scope: args.scope,
          dependsOn: args.depends_on,
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
