import { timingSafeEqual } from "node:crypto"
import { Hono, type Context } from "hono"
import { streamSSE } from "hono/streaming"
import type { Assets } from "./assets.js"
import type { Hub } from "./hub.js"

/**
 * The dashboard's HTTP side: the page and its files, a snapshot, the live feed (SSE), and the
 * two actions. Every request needs the token (query `token`, or header `x-nso-token`); an action
 * needs it in the header, which a page on another site cannot set.
 */

export const TOKEN_HEADER = "x-nso-token"

/** Where the page's data comes from: a running NSO (actions allowed) or the journal (read-only). */
export interface DashboardSource {
  hub: Hub
  /** What the header says: the project, and where the data comes from. */
  about: { project: string; readOnly: boolean; note?: string }
  /** Answers an open question as the user; resolves to what happened, in words. */
  answer(questionId: string, text: string): Promise<string>
  /** Cancels a task or team run (`wf_…`) and what it started; resolves to what happened. */
  cancel(id: string): Promise<string>
  /** The telemetry view's figures. */
  telemetry(): Promise<unknown>
}

/** Thrown by a source for a request it refuses: the message says why and what to do. */
export class ActionError extends Error {
  constructor(
    message: string,
    readonly status: 400 | 404 | 409 = 400,
  ) {
    super(message)
  }
}

export interface AppOptions {
  token: string
  source: DashboardSource
  assets: Assets
  /** SSE keep-alive comment interval (ms). */
  keepAliveMs?: number
}

export function sameToken(given: string | undefined | null, token: string): boolean {
  if (!given) return false
  const a = Buffer.from(given)
  const b = Buffer.from(token)
  return a.length === b.length && timingSafeEqual(a, b)
}

export function dashboardApp(opts: AppOptions): Hono {
  const { token, source, assets } = opts
  const app = new Hono()

  app.use("*", async (c, next) => {
    const given = c.req.header(TOKEN_HEADER) ?? (c.req.method === "GET" ? c.req.query("token") : undefined)
    if (!sameToken(given, token))
      return c.text(
        c.req.method === "GET"
          ? "401: this dashboard needs its token. Open the URL NSO showed (also in .opencode/nso/dashboard.url, or run `nso dashboard`)."
          : `401: actions need the token in the ${TOKEN_HEADER} header.`,
        401,
      )
    c.header("Cache-Control", "no-store")
    c.header("X-Content-Type-Options", "nosniff")
    c.header("Referrer-Policy", "no-referrer")
    await next()
  })

  app.get("/", (c) => {
    c.header("Content-Security-Policy", "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'")
    return c.html(assets.page(token, { about: source.about, ...source.hub.snapshot() }))
  })
  app.get("/assets/:name", (c) => serveAsset(c, assets, c.req.path))
  app.get("/vendor/:name", (c) => serveAsset(c, assets, c.req.path))

  app.get("/api/snapshot", (c) => c.json({ about: source.about, ...source.hub.snapshot() }))

  app.get("/api/telemetry", async (c) => {
    try {
      return c.json(await source.telemetry())
    } catch (err) {
      return c.json({ error: `telemetry could not be read: ${(err as Error).message}` }, 500)
    }
  })

  app.get("/api/events", (c) => {
    const last = c.req.header("last-event-id") ?? c.req.query("lastEventId")
    return streamSSE(c, async (stream) => {
      const hub = source.hub
      // Changes that arrive while the backlog is written wait in order behind it.
      const queue: { id: string; event: string; data: string }[] = []
      let wake: (() => void) | undefined
      const unsubscribe = hub.subscribe((ch) => {
        queue.push({ id: ch.id, event: "item", data: JSON.stringify(ch.item) })
        wake?.()
      })
      let closed = false
      stream.onAbort(() => {
        closed = true
        wake?.()
      })
      try {
        // A dropped connection is retried after a second (the browser's default is slower).
        await stream.write("retry: 1000\n\n")
        const missed = hub.since(last)
        if (missed) for (const ch of missed) await stream.writeSSE({ id: ch.id, event: "item", data: JSON.stringify(ch.item) })
        else {
          const snap = hub.snapshot()
          await stream.writeSSE({ id: snap.id, event: "snapshot", data: JSON.stringify({ about: source.about, ...snap }) })
        }
        const keepAlive = setInterval(() => {
          void stream.write(": keep-alive\n\n").catch(() => {})
        }, opts.keepAliveMs ?? 15_000)
        try {
          while (!closed) {
            const next = queue.shift()
            if (next) {
              await stream.writeSSE(next)
              continue
            }
            await new Promise<void>((r) => (wake = r))
            wake = undefined
          }
        } finally {
          clearInterval(keepAlive)
        }
      } finally {
        unsubscribe()
      }
    })
  })

  app.post("/api/answer", async (c) => {
    const body = await json(c)
    const id = typeof body?.questionId === "string" ? body.questionId : ""
    const text = typeof body?.answer === "string" ? body.answer.trim() : ""
    if (!id || !text) return c.json({ error: 'send {"questionId": "q_…", "answer": "…"}: both are needed and the answer must not be empty' }, 400)
    return act(c, () => source.answer(id, text))
  })

  app.post("/api/cancel", async (c) => {
    const body = await json(c)
    const id = typeof body?.id === "string" ? body.id : ""
    if (!id) return c.json({ error: 'send {"id": "tsk_…" or "wf_…"}: the task or team run to cancel' }, 400)
    return act(c, () => source.cancel(id))
  })

  app.notFound((c) => c.text("404: no such page on the NSO dashboard.", 404))
  app.onError((err, c) => c.json({ error: `the dashboard failed: ${err.message}` }, 500))
  return app
}

function serveAsset(c: Context, assets: Assets, path: string): Response {
  const a = assets.get(path)
  if (!a) return c.text("404: no such file on the NSO dashboard.", 404)
  return c.body(a.body, 200, { "Content-Type": a.type })
}

async function json(c: Context): Promise<Record<string, unknown> | undefined> {
  try {
    const v: unknown = await c.req.json()
    return v && typeof v === "object" ? (v as Record<string, unknown>) : undefined
  } catch {
    return undefined
  }
}

async function act(c: Context, fn: () => Promise<string>): Promise<Response> {
  try {
    return c.json({ ok: true, message: await fn() })
  } catch (err) {
    const status = err instanceof ActionError ? err.status : 400
    return c.json({ error: (err as Error).message }, status)
  }
}
