import { join } from "node:path"
import type { Hooks, Plugin } from "@opencode-ai/plugin"
import * as nodeFs from "node:fs/promises"
import { createDeps, fileLogger, type Deps } from "./deps.js"
import { chatMessageHook } from "./opencode/hooks/chat-message.js"
import { compactingHook } from "./opencode/hooks/compacting.js"
import { configHook } from "./opencode/hooks/config.js"
import { eventHook } from "./opencode/hooks/event.js"
import { guarded } from "./opencode/hooks/guard.js"
import { opencodeHost } from "./opencode/host.js"
import { systemHook } from "./opencode/hooks/system.js"
import { toolAfterHook, toolBeforeHook } from "./opencode/hooks/tools.js"
import { loadOptions } from "./options.js"
import { Runtime } from "./runtime.js"
import { projectContextTool } from "./opencode/tools/project-context.js"
import { commandHook } from "./opencode/hooks/command.js"
import { paramsHook } from "./opencode/hooks/params.js"
import { delegateTool } from "./opencode/tools/delegate.js"
import { answerTool } from "./opencode/tools/answer.js"
import { askUserTool } from "./opencode/tools/ask-user.js"
import { boardTool } from "./opencode/tools/board.js"
import { sendMessageTool } from "./opencode/tools/send-message.js"
import { tasksTool } from "./opencode/tools/tasks.js"
import { jobStartTool } from "./opencode/tools/job-start.js"
import { watch } from "node:fs"
import { homedir } from "node:os"
import { sharedDirs } from "./agents/shared.js"
import { openDashboard } from "./dashboard/open.js"

/**
 * NSO for OpenCode. Options: `"plugin": [["opencode-nso", { …options }]]` in opencode.json, over
 * `.opencode/nso.yaml`, over the shipped `config/defaults.yaml`.
 */
export const NsoPlugin: Plugin = async (input, pluginOptions) => {
  const projectDir = input.directory
  const host = opencodeHost(input.client, projectDir)
  const { options, problems } = await loadOptions({ fs: nodeFs }, projectDir, pluginOptions)
  const log = fileLogger(join(projectDir, options.stateDir, "nso.log"), options.logLevel)
  const deps: Deps = createDeps({ host, log })
  if (problems.length) {
    for (const p of problems) log.log("error", `invalid NSO option, this setting is ignored: ${p}`)
    void host.toast(`NSO options: ${problems[0]}${problems.length > 1 ? ` (+${problems.length - 1} more)` : ""}`, "error").catch(() => {})
  }

  let rt: Runtime
  try {
    const shared = (kind: "agents" | "teams", paths: readonly string[]) => sharedDirs({ projectDir, home: homedir(), env: process.env, paths, kind })
    rt = await Runtime.start(deps, projectDir, options, problems, { agents: shared("agents", options.agentsPaths), teams: shared("teams", options.teamsPaths) })
  } catch (err) {
    // NSO off, OpenCode on: a broken state folder must never take the server down.
    log.log("error", "NSO could not start; it is disabled for this server", { error: String(err) })
    void host.toast(`NSO could not start: ${String(err).slice(0, 200)}`, "error").catch(() => {})
    return {}
  }

  const dashboard = await openDashboard(rt).catch((err) => void log.log("error", "the dashboard could not start", { error: String(err) }))

  // Deferred, never blocking plugin start (OpenCode waits for it): sessions that existed before
  // the plugin was ready, tasks a restart interrupted, the reconciliation sweep.
  deps.timers.setTimeout(() => {
    void rt.init.sweep().catch((err) => log.log("warn", "start-up sweep failed", { error: String(err) }))
    void rt.startBackground().catch((err) => log.log("error", "task recovery failed", { error: String(err) }))
  }, options.init.sweepDelayMs)

  // Answers and cancellations written by `nso` in another process land in the journal.
  // The watcher fires on every write, NSO's own included: changes are gathered for 50 ms and
  // read once (one at a time; a change during a read is read right after it).
  let pulling: Promise<void> | undefined
  let again = false
  let scheduled = false
  const pull = (): void => {
    if (pulling) return void (again = true)
    pulling = rt
      .pullForeign()
      .catch((err) => log.log("warn", "reading foreign journal records failed", { error: String(err) }))
      .finally(() => {
        pulling = undefined
        if (again) {
          again = false
          pull()
        }
      })
  }
  const soon = (): void => {
    if (scheduled) return
    scheduled = true
    deps.timers.setTimeout(() => {
      scheduled = false
      pull()
    }, 50)
  }
  let watcher: ReturnType<typeof watch> | undefined
  try {
    watcher = watch(join(projectDir, options.stateDir), (_ev, file) => {
      if (file === "journal.jsonl") soon()
    })
    watcher.unref?.()
  } catch (err) {
    log.log("warn", "cannot watch the state folder; answers from the CLI are picked up by the slow sweep only", { error: String(err) })
  }
  const slowPull = deps.timers.setInterval(pull, 5_000, { keepAlive: false })

  const onTerm = () => {
    rt.closer.flushSync()
    process.off("SIGTERM", onTerm)
    // If nobody else handles SIGTERM, adding a listener would have stopped the default exit.
    if (process.listenerCount("SIGTERM") === 0) process.kill(process.pid, "SIGTERM")
  }
  process.on("SIGTERM", onTerm)

  const g = <A extends unknown[]>(name: string, fn: (...a: A) => Promise<void>) => guarded(deps, name, fn)
  const hooks: Hooks = {
    event: g("event", eventHook(rt)),
    config: g("config", configHook(rt)),
    "chat.message": g("chat.message", chatMessageHook(rt)),
    "chat.params": g("chat.params", paramsHook(rt)),
    "tool.execute.before": g("tool.execute.before", toolBeforeHook(rt)),
    "tool.execute.after": g("tool.execute.after", toolAfterHook(rt)),
    "experimental.chat.system.transform": g("system.transform", systemHook(rt)),
    "experimental.session.compacting": g("session.compacting", compactingHook(rt)),
    "command.execute.before": g("command.execute.before", commandHook(rt)),
    tool: {
      project_context: projectContextTool(rt),
      delegate: delegateTool(rt),
      tasks: tasksTool(rt),
      answer: answerTool(rt),
      ask_user: askUserTool(rt),
      send_message: sendMessageTool(rt),
      board: boardTool(rt),
      job_start: jobStartTool(rt),
    },
    dispose: async () => {
      process.off("SIGTERM", onTerm)
      watcher?.close()
      deps.timers.clearInterval(slowPull)
      await dashboard?.close().catch(() => {})
      await rt.dispose()
    },
  }
  return hooks
}
