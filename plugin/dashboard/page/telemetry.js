// Which agent does well, how long work takes, and what coordination costs: from NSO's telemetry files.
import { useEffect, useState } from "preact/hooks"
import { html, pct, secs, withToken } from "./api.js"

/** How often the open view reloads the figures (ms). */
const RELOAD_MS = 10_000

export function Telemetry() {
  const [data, setData] = useState(undefined)
  const [error, setError] = useState("")
  useEffect(() => {
    let stop = false
    const load = async () => {
      try {
        const r = await fetch(withToken("/api/telemetry"))
        const d = await r.json()
        if (!r.ok) throw new Error(d.error ?? `HTTP ${r.status}`)
        if (!stop) (setData(d), setError(""))
      } catch (err) {
        if (!stop) setError(err.message)
      }
    }
    load()
    const t = setInterval(load, RELOAD_MS)
    return () => ((stop = true), clearInterval(t))
  }, [])
  if (error) return html`<p class="error">${error}</p>`
  if (!data) return html`<p class="empty">Reading telemetry…</p>`
  const o = data.overhead
  return html`
    <section class="telemetry">
      <div class="figures">
        <${Figure} label="coordination overhead" value=${o.coverage.overheadPct === null ? "—" : `${o.coverage.overheadPct.toFixed(1)}%`} note=${o.coverage.band ? `${o.coverage.band}: share of the time no agent worked` : "no completed workflows yet"} />
        <${Figure} label="coordination tokens" value=${o.tokens.coordinationPct === null ? "—" : `${o.tokens.coordinationPct.toFixed(1)}%`} note=${`${o.tokens.coordinationTokens} of ${o.tokens.totalTokens} tokens in ${o.tokens.deliveryTurns} delivery turns`} />
        <${Figure} label="workflows" value=${o.workflows} note=${`${o.byKind.team.workflows} team runs, ${o.byKind.task.workflows} single tasks`} />
      </div>
      <table class="agents">
        <thead><tr><th>agent</th><th>tasks</th><th>success</th><th>avg duration</th><th>tokens</th><th>trend</th><th>success, last 14 days</th><th>tasks / day</th></tr></thead>
        <tbody>
          ${data.agents.map(
            (a) => html`<tr data-agent=${a.agent}>
              <td><b>${a.agent}</b></td><td>${a.tasks}</td><td>${pct(a.successRate)}</td><td>${secs(a.avgDurationSeconds)}</td><td>${a.tokens}</td>
              <td><span class=${`trend t-${a.trend.replaceAll(" ", "-")}`}>${a.trend}</span></td>
              <td><${Spark} points=${a.daily.map((d) => d.successRate)} max=${1} /></td>
              <td><${Bars} points=${a.daily.map((d) => d.tasks)} /></td>
            </tr>`,
          )}
        </tbody>
      </table>
      ${data.agents.length === 0 ? html`<p class="empty">No finished tasks recorded yet.</p>` : null}
      ${o.recent.length
        ? html`<h3>Recent workflows</h3><div class="recent">${o.recent.map((w) => html`<div class=${`wf ${w.success ? "wf-ok" : "wf-bad"}`} title=${`${w.workflow_id}: ${w.wallSeconds.toFixed(1)} s, overhead ${w.overheadPct.toFixed(1)}%`}><b>${w.team ?? w.kind}</b> ${w.wallSeconds.toFixed(1)} s · ${w.overheadPct.toFixed(0)}%</div>`)}</div>`
        : null}
    </section>
  `
}

function Figure({ label, value, note }) {
  return html`<div class="figure"><div class="v">${value}</div><div class="k">${label}</div><div class="muted">${note}</div></div>`
}

/** A line over the days with data; gaps where a day had none. */
function Spark({ points, max }) {
  const W = 120
  const H = 24
  const step = W / Math.max(1, points.length - 1)
  let d = ""
  points.forEach((p, i) => {
    if (p === null) return
    d += `${d && points[i - 1] !== null ? "L" : "M"}${(i * step).toFixed(1)},${(H - 2 - (p / max) * (H - 4)).toFixed(1)} `
  })
  const y = (p) => H - 2 - (p / max) * (H - 4)
  return html`<svg class="spark" width=${W} height=${H} viewBox=${`0 0 ${W} ${H}`}><line x1="0" x2=${W} y1=${H - 2} y2=${H - 2} class="base" />${d ? html`<path d=${d} />` : null}${points.map((p, i) => (p === null ? null : html`<circle cx=${i * step} cy=${y(p)} r="2"><title>${Math.round(p * 100)}%</title></circle>`))}</svg>`
}

function Bars({ points }) {
  const W = 120
  const H = 24
  const max = Math.max(1, ...points)
  const bw = W / points.length
  return html`<svg class="bars" width=${W} height=${H} viewBox=${`0 0 ${W} ${H}`}>${points.map((p, i) => html`<rect x=${i * bw + 1} y=${H - (p / max) * H} width=${bw - 2} height=${(p / max) * H} />`)}</svg>`
}
