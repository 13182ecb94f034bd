import { tool } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { JobError } from "../../jobs/runner.js"
import { defineTool } from "./define.js"

const z = tool.schema

/** Starts a shell command as a background job; returns its id at once. */
export function jobStartTool(rt: Runtime) {
  return defineTool("job_start", {
    description: "Run a shell command in the background: id now; exit code and output tail later as an [NSO] message. tasks with the id: output, wait, cancel.",
    args: {
      command: z.string(),
      title: z.string().optional(),
      cwd: z.string().optional(),
      timeout_ms: z.number().optional(),
    },
    async run(args, call) {
      // NSO's own check (the profile's rules) first: never ask the user about a command it refuses.
      const refusal = rt.catalogue.refuseCommand(call.agent, args.command)
      if (refusal) throw new JobError(refusal)
      // The agent's bash permission, as OpenCode applies it to bash (patterns included, a rule
      // that says ask asks the user), also governs the commands it runs as jobs.
      try {
        await call.ask?.("bash", [args.command])
      } catch (err) {
        throw new JobError(`the bash permission refused this command (${(err as Error).message}). Do not retry it as a job.`)
      }
      const j = await rt.jobs.start({ command: args.command, title: args.title, cwd: args.cwd, timeoutMs: args.timeout_ms, sessionId: call.sessionId, agent: call.agent })
      const title = `job: ${j.title} · ${j.id} · in the background`
      call.show(title, { jobId: j.id })
      return {
        title,
        output: `Started job ${j.id} (pid ${j.pid}${j.timeoutMs ? `, limit ${Math.round(j.timeoutMs / 1000)} s` : ""}). Keep working; its end arrives as an [NSO · job · …] message.`,
        metadata: { jobId: j.id, pid: j.pid },
      }
    },
  })
}
