import { randomBytes } from "node:crypto"
import type { AddressInfo } from "node:net"
import type { Server } from "node:http"
import { serve } from "@hono/node-server"
import { dashboardApp, type DashboardSource } from "./app.js"
import { Assets } from "./assets.js"

/** The only address the dashboard listens on. */
export const HOST = "127.0.0.1"

export interface RunningDashboard {
  /** The page's URL, token included. */
  url: string
  port: number
  token: string
  close(): Promise<void>
}

/** A fresh random token: 24 bytes, URL-safe. */
export const newToken = (): string => randomBytes(24).toString("base64url")

/**
 * Serves the dashboard on 127.0.0.1 (`port` 0: any free port) with @hono/node-server, which runs
 * on Node's http module — in Node (the CLI) and in OpenCode's Bun alike.
 */
export async function startDashboard(source: DashboardSource, opts: { port: number; token?: string; assets?: Assets; /** Keep the process alive while it serves (the CLI); a plugin's server never holds OpenCode open. */ hold?: boolean }): Promise<RunningDashboard> {
  const token = opts.token ?? newToken()
  const app = dashboardApp({ token, source, assets: opts.assets ?? new Assets() })
  const server = await new Promise<Server>((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: HOST, port: opts.port }, () => resolve(s as Server)) as Server
    s.once("error", reject)
  })
  if (!opts.hold) server.unref()
  const port = (server.address() as AddressInfo).port
  return {
    url: `http://${HOST}:${port}/?token=${token}`,
    port,
    token,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // Live feeds never end by themselves.
        server.closeAllConnections?.()
      }),
  }
}
