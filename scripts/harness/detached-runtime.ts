import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createDeps } from "../../plugin/deps.js"
import { Options } from "../../plugin/options.js"
import type { Task } from "../../plugin/protocol.js"
import { Runtime } from "../../plugin/runtime.js"

/**
 * NSO's runtime on a temp folder with no OpenCode behind it: events written through
 * `Runtime.write` reach its listeners (the dashboard) as in the plugin. For the dashboard's
 * benchmark and page tests.
 */

let n = 0
export function sampleTask(over: Partial<Task> = {}): Task {
  const now = Date.now()
  const i = ++n
  return {
    id: `tsk_bench${String(i).padStart(6, "0")}`,
    agent: ["builder", "scout", "janitor", "designer"][i % 4]!,
    title: `bench task ${i}`,
    prompt: `do bench task ${i}`,
    priority: "medium",
    status: "running",
    parentSessionId: `ses_root${i % 3}`,
    sessionId: `ses_child${i}`,
    depth: 0,
    scope: [],
    dependsOn: [],
    createdAt: now - 5_000,
    updatedAt: now,
    lastActivityAt: now,
    ...over,
  }
}

/** A runtime on a temp folder, with no OpenCode behind it: events go through `write` as in the plugin. */
export async function detachedRuntime(): Promise<{ rt: Runtime; dir: string; close(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), "nso-dash-"))
  const rt = await Runtime.start(createDeps(), dir, Options.parse({ journal: { fsync: false }, dashboard: { enabled: true } }))
  return {
    rt,
    dir,
    async close() {
      await rt.dispose()
      rmSync(dir, { recursive: true, force: true })
    },
  }
}

