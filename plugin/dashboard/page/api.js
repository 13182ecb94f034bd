// The page's link to its server: the token (from the URL), actions, and small formatters.
import { h } from "preact"
import htm from "htm"

export const html = htm.bind(h)
export const token = new URLSearchParams(location.search).get("token") ?? ""
export const withToken = (path) => `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`

/** POST an action with the token in its header; resolves to the server's message or throws its error. */
export async function act(path, body) {
  const r = await fetch(path, { method: "POST", headers: { "content-type": "application/json", "x-nso-token": token }, body: JSON.stringify(body) })
  const data = await r.json().catch(() => ({ error: `HTTP ${r.status}` }))
  if (!r.ok) throw new Error(data.error ?? `HTTP ${r.status}`)
  return data.message
}

export function ago(ms, now) {
  const s = Math.max(0, Math.round((now - ms) / 1000))
  return s < 60 ? `${s}s` : s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`
}

export const fmtTokens = (n) => (n === undefined || n === null ? "—" : n >= 1000 ? `${(n / 1000).toFixed(1)}k` : String(n))
export const pct = (x) => (x === null || x === undefined ? "—" : `${Math.round(x * 100)}%`)
export const secs = (x) => (x === null || x === undefined ? "—" : x >= 60 ? `${(x / 60).toFixed(1)} min` : `${x.toFixed(1)} s`)
export const clock = (ms) => new Date(ms).toLocaleTimeString()
export const shortId = (id) => (id && id.length > 14 ? `${id.slice(0, 12)}…` : id)

export const TERMINAL = new Set(["completed", "failed", "cancelled"])
export const TERMINAL_PHASES = new Set(["completed", "failed", "partial", "cancelled"])

export function Status({ status }) {
  return html`<span class=${`badge s-${status}`}>${status.replaceAll("_", " ")}</span>`
}
