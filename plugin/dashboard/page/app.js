// NSO dashboard: one live store fed by the server's event stream, four views over it.
import { render } from "preact"
import { useEffect, useState } from "preact/hooks"
import { html, withToken } from "./api.js"
import { Lanes } from "./lanes.js"
import { Runs } from "./runs.js"
import { Messages } from "./messages.js"
import { Telemetry } from "./telemetry.js"

const KINDS = ["task", "question", "run", "post", "message"]
const store = { about: { project: "", readOnly: false }, maps: Object.fromEntries(KINDS.map((k) => [k, new Map()])), version: 0, live: "connecting", lastId: "", snapshots: 0 }
const listeners = new Set()
let scheduled = false
function changed() {
  store.version++
  if (scheduled) return
  scheduled = true
  // One render per frame however many items arrive.
  requestAnimationFrame(() => {
    scheduled = false
    for (const l of listeners) l(store.version)
  })
}

function apply(item) {
  store.maps[item.kind]?.set(item.id, item.data)
}

function load(snap) {
  store.about = snap.about
  for (const m of Object.values(store.maps)) m.clear()
  for (const item of snap.items) apply(item)
  store.lastId = snap.id
}

function connect() {
  // The page came with a snapshot: the feed starts after it. EventSource reconnects by itself
  // and sends Last-Event-ID: the server resumes without gaps, or sends a new snapshot.
  const es = new EventSource(withToken(`/api/events?lastEventId=${encodeURIComponent(store.lastId)}`))
  es.addEventListener("snapshot", (ev) => {
    load(JSON.parse(ev.data))
    store.snapshots++
    store.live = "live"
    changed()
  })
  es.addEventListener("item", (ev) => {
    apply(JSON.parse(ev.data))
    store.lastId = ev.lastEventId
    store.live = "live"
    changed()
  })
  es.addEventListener("open", () => {
    store.live = "live"
    changed()
  })
  es.addEventListener("error", () => {
    store.live = es.readyState === EventSource.CLOSED ? "closed" : "reconnecting"
    changed()
  })
}

function useStore() {
  const [, set] = useState(0)
  useEffect(() => {
    listeners.add(set)
    return () => listeners.delete(set)
  }, [])
  return store
}

function useNow(ms = 1000) {
  const [now, set] = useState(Date.now())
  useEffect(() => {
    const t = setInterval(() => set(Date.now()), ms)
    return () => clearInterval(t)
  }, [])
  return now
}

const TABS = [
  ["lanes", "Work"],
  ["teams", "Team runs"],
  ["messages", "Messages"],
  ["telemetry", "Telemetry"],
]

function App() {
  const s = useStore()
  const now = useNow()
  const [tab, setTab] = useState(location.hash.slice(1) || "lanes")
  useEffect(() => {
    location.hash = tab
  }, [tab])
  const open = [...s.maps.question.values()].filter((q) => q.status === "open").length
  const running = [...s.maps.task.values()].filter((t) => !["completed", "failed", "cancelled"].includes(t.status)).length
  const counts = { lanes: open ? `${open} need you` : `${running} running`, teams: s.maps.run.size, messages: s.maps.message.size }
  return html`
    <header>
      <div class="brand"><span class="logo">NSO</span><span class="project" title=${s.about.project}>${s.about.project}</span></div>
      <nav>
        ${TABS.map(
          ([id, label]) =>
            html`<button class=${`tab ${tab === id ? "on" : ""}`} data-tab=${id} onClick=${() => setTab(id)}>
              ${label}${counts[id] !== undefined ? html`<span class=${`count ${id === "lanes" && open ? "alert" : ""}`}>${counts[id]}</span>` : null}
            </button>`,
        )}
      </nav>
      <div class=${`live ${s.live}`} data-live=${s.live} data-snapshots=${s.snapshots} title=${`last event ${s.lastId}`}><span class="dot"></span>${s.live}</div>
    </header>
    ${s.about.readOnly ? html`<div class="readonly" data-testid="read-only">Read-only · ${s.about.note}</div>` : null}
    <main>
      ${tab === "lanes" ? html`<${Lanes} store=${s} now=${now} />` : null}
      ${tab === "teams" ? html`<${Runs} store=${s} now=${now} />` : null}
      ${tab === "messages" ? html`<${Messages} store=${s} />` : null}
      ${tab === "telemetry" ? html`<${Telemetry} />` : null}
    </main>
  `
}

load(JSON.parse(document.getElementById("snapshot").textContent))
connect()
const root = document.getElementById("app")
root.textContent = ""
render(html`<${App} />`, root)
