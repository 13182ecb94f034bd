// Every message NSO routed (agents, the Oracle, the user), newest first, with filters.
import { useState } from "preact/hooks"
import { clock, html, shortId } from "./api.js"

/** Rows drawn at once; the filters narrow the rest. */
const SHOWN = 300
const agentOf = (name) => name.replace(/\s*\(.*\)$/, "")

export function Messages({ store }) {
  const [f, setF] = useState({ from: "", to: "", kind: "", text: "" })
  const all = [...store.maps.message.values()].sort((a, b) => b.time - a.time)
  const values = (k) => [...new Set(all.map((m) => (k === "kind" ? m.kind : agentOf(m[k]))))].sort()
  const text = f.text.toLowerCase()
  const list = all.filter((m) => (!f.from || agentOf(m.from) === f.from) && (!f.to || agentOf(m.to) === f.to) && (!f.kind || m.kind === f.kind) && (!text || m.text.toLowerCase().includes(text)))
  const select = (k, label) => html`
    <label>${label}
      <select name=${k} value=${f[k]} onChange=${(e) => setF({ ...f, [k]: e.currentTarget.value })}>
        <option value="">all</option>
        ${values(k).map((v) => html`<option value=${v}>${v}</option>`)}
      </select>
    </label>`
  return html`
    <section class="messages">
      <form class="filters" onSubmit=${(e) => e.preventDefault()}>
        ${select("from", "From")} ${select("to", "To")} ${select("kind", "Kind")}
        <label>Text <input name="text" value=${f.text} placeholder="contains…" onInput=${(e) => setF({ ...f, text: e.currentTarget.value })} /></label>
        <span class="muted">${list.length} of ${all.length}</span>
      </form>
      <table class="msgs">
        <thead><tr><th>time</th><th>from</th><th>to</th><th>kind</th><th>text</th><th>outcome</th></tr></thead>
        <tbody>
          ${list.slice(0, SHOWN).map(
            (m) => html`<tr data-message=${m.id}>
              <td class="muted">${clock(m.time)}</td>
              <td><span class=${`src src-${m.source ?? "agent"}`}>${m.from}</span></td>
              <td>${m.to}</td>
              <td><span class="badge">${m.kind}</span>${m.priority && m.priority !== "medium" ? html` <span class=${`badge p-${m.priority}`}>${m.priority}</span>` : null}</td>
              <td class="mtext">${m.text}</td>
              <td class="muted">${m.outcome ?? ""} ${m.taskId ? html`<code>${shortId(m.taskId)}</code>` : null}</td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${list.length > SHOWN ? html`<p class="muted">${list.length - SHOWN} older messages not shown: narrow the filters.</p>` : null}
      ${all.length === 0 ? html`<p class="empty">No messages yet.</p>` : null}
    </section>
  `
}
