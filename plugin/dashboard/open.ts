import { join } from "node:path"
import type { Runtime } from "../runtime.js"
import { liveSource } from "./live.js"
import { startDashboard } from "./server.js"

/** The file, in the state folder, that holds the running dashboard's URL (token included). */
export const URL_FILE = "dashboard.url"

export const urlFile = (projectDir: string, stateDir: string) => join(projectDir, stateDir, URL_FILE)

/**
 * Starts the dashboard of a running NSO when the `dashboard` option allows: its URL is written to
 * `<stateDir>/dashboard.url` (readable by the user only) and shown once as a toast. A dashboard that
 * cannot start is reported, never fatal. Returns the way to stop it, or undefined.
 */
export async function openDashboard(rt: Runtime): Promise<{ url: string; close(): Promise<void> } | undefined> {
  const opts = rt.options.dashboard
  if (!opts.enabled) return undefined
  const source = liveSource(rt)
  let server: Awaited<ReturnType<typeof startDashboard>>
  try {
    server = await startDashboard(source, { port: opts.port })
  } catch (err) {
    source.dispose()
    const why = (err as NodeJS.ErrnoException).code === "EADDRINUSE" ? `port ${opts.port} is in use (set dashboard.port to another port, or 0 for any free one)` : String(err)
    rt.deps.log.log("error", "the dashboard could not start", { error: String(err) })
    rt.notices.add(`NSO dashboard: could not start: ${why}.`)
    return undefined
  }
  const file = urlFile(rt.projectDir, rt.options.stateDir)
  await rt.deps.fs.writeFile(file, `${server.url}\n`, { mode: 0o600 }).catch((err) => rt.deps.log.log("warn", "could not write the dashboard URL file", { error: String(err) }))
  void rt.deps.host.toast(`NSO dashboard: ${server.url}`, "info").catch(() => {})
  rt.deps.log.log("info", "dashboard started", { port: server.port })
  return {
    url: server.url,
    async close() {
      source.dispose()
      await server.close()
      // Another server of this project may have written its own URL since: leave that one.
      if ((await rt.deps.fs.readFile(file, "utf8").catch(() => "")).trim() === server.url) await rt.deps.fs.rm(file, { force: true })
    },
  }
}
