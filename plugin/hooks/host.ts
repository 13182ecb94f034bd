import type { PluginInput } from "@opencode-ai/plugin"
import type { Host, HostSession } from "../deps.js"

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
          noReply: m.noReply,
          parts: [{ type: "text", text: m.text, synthetic: true, metadata: { nso: m.meta } }],
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
  }
}
