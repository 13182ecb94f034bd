import type { PluginInput } from "@opencode-ai/plugin"
import type { Host, HostSession } from "../deps.js"
import { promptTools } from "./permissions.js"
import { assistantError, type OpencodeError } from "./shapes.js"

type Client = PluginInput["client"]

/** NSO's `Host` port over the OpenCode SDK client: the one place that knows the SDK's shapes. */
export function opencodeHost(client: Client, directory: string): Host {
  const toHost = (s: { id: string; parentID?: string; title?: string; time?: { updated?: number } }): HostSession => ({
    id: s.id,
    parentId: s.parentID,
    title: s.title,
    updatedAt: s.time?.updated,
  })
  return {
    async inject(sessionId, m) {
      const r = await client.session.promptAsync({
        path: { id: sessionId },
        query: { directory },
        body: {
          ...(m.agent ? { agent: m.agent } : {}),
          ...(m.delegates !== undefined ? { tools: promptTools(m.delegates) } : {}),
          noReply: m.noReply,
          // Not synthetic: OpenCode's TUI hides synthetic parts, and the user must see what NSO
          // delivered. The metadata still tags it (agent or system, never the user).
          parts: [{ type: "text", text: m.text, metadata: { nso: m.meta } }],
        },
      })
      if (r.error) throw new Error(`OpenCode refused the injection into ${sessionId}: ${JSON.stringify(r.error).slice(0, 300)}`)
    },
    async toast(message, variant) {
      await client.tui.showToast({ body: { message, variant }, query: { directory } })
    },
    async session(id) {
      const r = await client.session.get({ path: { id }, query: { directory } })
      return r.data ? toHost(r.data) : undefined
    },
    async sessions() {
      const r = await client.session.list({ query: { directory } })
      return (r.data ?? []).map(toHost)
    },
    async injectedIds(sessionId) {
      const r = await client.session.messages({ path: { id: sessionId }, query: { directory } })
      const ids = new Set<string>()
      for (const m of r.data ?? [])
        for (const p of m.parts) {
          const nso = (p as { metadata?: { nso?: { ids?: unknown } } }).metadata?.nso
          if (Array.isArray(nso?.ids)) for (const id of nso.ids) if (typeof id === "string") ids.add(id)
        }
      return ids
    },
    async createSession({ parentId, title }) {
      const r = await client.session.create({ body: { parentID: parentId, title }, query: { directory } })
      if (!r.data) throw new Error(`OpenCode could not create a child session of ${parentId}: ${JSON.stringify(r.error).slice(0, 300)}`)
      return r.data.id
    },
    async prompt(sessionId, p) {
      const r = await client.session.promptAsync({
        path: { id: sessionId },
        query: { directory },
        body: {
          agent: p.agent,
          ...(p.delegates !== undefined ? { tools: promptTools(p.delegates) } : {}),
          parts: [{ type: "text", text: p.text, ...(p.meta ? { metadata: { nso: p.meta } } : {}) }],
        },
      })
      if (r.error) throw new Error(`OpenCode refused the prompt for ${sessionId}: ${JSON.stringify(r.error).slice(0, 300)}`)
    },
    async abort(sessionId) {
      await client.session.abort({ path: { id: sessionId }, query: { directory } })
    },
    async lastAssistant(sessionId) {
      const r = await client.session.messages({ path: { id: sessionId }, query: { directory, limit: 5 } })
      const msgs = r.data ?? []
      for (let i = msgs.length - 1; i >= 0; i--) {
        const m = msgs[i]!
        if (m.info.role !== "assistant") continue
        const info = m.info as { time: { created: number; completed?: number }; error?: OpencodeError; finish?: string }
        const text = m.parts
          .filter((p): p is typeof p & { type: "text"; text: string } => p.type === "text" && !(p as { synthetic?: boolean }).synthetic)
          .map((p) => p.text)
          .join("\n")
          .trim()
        return {
          completed: info.time.completed !== undefined || info.error !== undefined,
          text,
          createdAt: info.time.created,
          ...(info.error ? { error: assistantError(info.error) } : {}),
        }
      }
      return undefined
    },
    async busySessions() {
      const r = await client.session.status({ query: { directory } })
      const out = new Set<string>()
      for (const [id, st] of Object.entries(r.data ?? {})) if ((st as { type: string }).type !== "idle") out.add(id)
      return out
    },
  }
}
