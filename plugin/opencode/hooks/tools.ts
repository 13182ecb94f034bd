import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { Refusal } from "./guard.js"
import { effectOf, writeTargets } from "../shapes.js"
import { refuseWrite } from "../../tasks/write-guard.js"

type Before = NonNullable<Hooks["tool.execute.before"]>
type After = NonNullable<Hooks["tool.execute.after"]>

/** Init on first tool call, the write-scope guard, and the start time for the tool log. */
export function toolBeforeHook(rt: Runtime): Before {
  return async (input, output) => {
    rt.toolLog.before(input.callID)
    rt.telemetry.toolStart(input.callID, input.sessionID, input.tool)
    rt.tasks.touch(input.sessionID)
    await rt.init.ensure(input.sessionID, "tool.execute")
    const refusal =
      rt.catalogue.refuse(rt.registry.get(input.sessionID).agent, { name: input.tool, effect: effectOf(input.tool) }) ??
      refuseWrite({ projectDir: rt.projectDir, tasks: rt.state.tasks, own: rt.tasks.bySessionId(input.sessionID), tool: input.tool, targets: writeTargets(input.tool, output.args) })
    if (refusal) {
      void rt.toolLog.after({ callId: input.callID, sessionId: input.sessionID, agent: rt.registry.get(input.sessionID).agent, tool: input.tool, args: output.args, error: refusal })
      throw new Refusal(refusal)
    }
  }
}

/** One line per tool call in log.jsonl. */
export function toolAfterHook(rt: Runtime): After {
  return async (input, output) => {
    const meta = output.metadata as { error?: unknown } | undefined
    const error = meta?.error !== undefined ? String(meta.error) : undefined
    rt.telemetry.toolEnd(input.callID, error === undefined)
    await rt.toolLog.after({
      callId: input.callID,
      sessionId: input.sessionID,
      agent: rt.registry.get(input.sessionID).agent,
      tool: input.tool,
      args: input.args,
      error,
    })
  }
}
