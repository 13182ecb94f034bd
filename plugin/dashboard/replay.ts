import { join } from "node:path"
import type { Deps } from "../deps.js"
import { Journal } from "../journal/journal.js"
import { nsoReducer } from "../journal/state.js"
import { telemetryDir } from "../telemetry/read.js"
import { ActionError, type DashboardSource } from "./app.js"
import { JsonlTail } from "./audit-tail.js"
import { Hub } from "./hub.js"
import { telemetryView } from "./telemetry.js"
import { auditItem, stateItems } from "./view.js"

export const READ_ONLY_NOTE =
  "No OpenCode server with NSO runs for this project: this is a read-only view of NSO's journal, followed as it changes. Answer with `nso answer`, cancel with `nso cancel`; they act when OpenCode runs here again."

/**
 * The dashboard without a running NSO (`nso dashboard` when no server is up): the journal
 * replayed, and replayed again whenever it changes (the hub sends only what differs).
 */
export async function replaySource(deps: Deps, projectDir: string, stateDir: string): Promise<DashboardSource & { dispose(): void }> {
  const hub = new Hub()
  const dir = join(projectDir, stateDir)
  const audit = new JsonlTail(deps.fs, join(dir, "messages.jsonl"))
  let loading: Promise<void> | undefined
  let again = false
  const load = async (): Promise<void> => {
    if (loading) return void (again = true)
    loading = (async () => {
      const { state } = await Journal.read(deps, nsoReducer, dir)
      for (const item of stateItems(state)) hub.publish(item)
      for (const r of await audit.read()) {
        const item = auditItem(r)
        if (item) hub.publish(item)
      }
    })()
      .catch((err) => deps.log.log("warn", "the dashboard could not read the journal", { error: String(err) }))
      .finally(() => {
        loading = undefined
        if (again) {
          again = false
          void load()
        }
      })
    return loading
  }
  await load()
  // Where the file system cannot watch, the sweep below still follows the journal.
  const unwatch = deps.proc.watch(dir, () => void load())
  const timer = deps.timers.setInterval(() => void load(), 2_000, { keepAlive: false })
  const refuse = async (): Promise<string> => {
    throw new ActionError(`This is a read-only view (no OpenCode server with NSO runs here). ${READ_ONLY_NOTE.split(": ")[1]}`, 409)
  }
  return {
    hub,
    about: { project: projectDir, readOnly: true, note: READ_ONLY_NOTE },
    answer: refuse,
    cancel: refuse,
    telemetry: () => telemetryView(deps, telemetryDir(projectDir, stateDir), deps.clock.now()),
    dispose() {
      unwatch()
      deps.timers.clearInterval(timer)
    },
  }
}
