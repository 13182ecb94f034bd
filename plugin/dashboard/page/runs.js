// Team runs: members, and who talked to whom (messages) and who handed work to whom (handoffs), as SVG.
import { ago, fmtTokens, html, Status, TERMINAL_PHASES } from "./api.js"

/** "builder (tsk_…)" → "builder": the audit names a task's agent and its id. */
const agentOf = (name) => name.replace(/\s*\(.*\)$/, "")

export function Runs({ store, now }) {
  const runs = [...store.maps.run.values()].sort((a, b) => (TERMINAL_PHASES.has(a.phase) - TERMINAL_PHASES.has(b.phase)) || b.createdAt - a.createdAt)
  if (!runs.length) return html`<p class="empty">No team runs yet. Start one with <code>/team</code> or <code>nso team run</code>.</p>`
  const tasks = [...store.maps.task.values()]
  const messages = [...store.maps.message.values()]
  return html`<div class="runs">${runs.map((w) => html`<${Run} key=${w.id} run=${w} members=${tasks.filter((t) => t.workflowId === w.id)} messages=${messages.filter((m) => m.workflowId === w.id)} posts=${[...store.maps.post.values()].filter((p) => p.workflow === w.id)} now=${now} />`)}</div>`
}

function Run({ run, members, messages, posts, now }) {
  return html`
    <section class="card run" data-run=${run.id}>
      <div class="run-head">
        <span class="badge team">team</span> <b>${run.team}</b> <span class="muted">${run.pattern.replaceAll("_", " ")}</span>
        <${Status} status=${run.phase} /> <code class="id">${run.id}</code>
        <span class="when">${ago(run.createdAt, now)} ago</span>
      </div>
      <p class="goal">${run.goal}</p>
      <div class="run-body">
        <table class="members">
          <thead><tr><th>member</th><th>role</th><th>status</th><th>tokens</th></tr></thead>
          <tbody>
            ${members.map((t) => html`<tr data-task=${t.id}><td>${t.agent}</td><td class="muted">${t.role ?? ""}</td><td><${Status} status=${t.status} /></td><td>${fmtTokens(t.tokens)}</td></tr>`)}
          </tbody>
        </table>
        <${Diagram} members=${members} messages=${messages} handoffs=${run.handoffs} />
      </div>
      ${posts.length ? html`<details class="board"><summary>Board (${posts.length})</summary>${posts.slice(-20).map((p) => html`<div class="post"><b>${p.from}</b> <span class="badge">${p.kind}</span> ${p.key ? html`<code>${p.key}</code> ` : null}${p.text}</div>`)}</details>` : null}
      ${run.result ? html`<details class="result-text"><summary>Result</summary><pre class="out">${run.result}</pre></details>` : null}
    </section>
  `
}

/** Agents on a circle; an arrow per sender → recipient (thicker with more messages), dashed for handoffs. */
export function Diagram({ members, messages, handoffs }) {
  const names = [...new Set([...members.map((t) => t.agent), ...messages.flatMap((m) => [agentOf(m.from), agentOf(m.to)]), ...handoffs.flatMap((h) => [h.fromAgent, h.toAgent])])].filter((n) => n && n !== "*")
  const W = 360
  const H = 260
  const R = Math.min(W, H) / 2 - 40
  const pos = new Map(names.map((n, i) => [n, { x: W / 2 + R * Math.cos((2 * Math.PI * i) / names.length - Math.PI / 2), y: H / 2 + R * Math.sin((2 * Math.PI * i) / names.length - Math.PI / 2) }]))
  const edges = new Map()
  for (const m of messages) {
    const k = `${agentOf(m.from)}→${agentOf(m.to)}`
    edges.set(k, (edges.get(k) ?? 0) + 1)
  }
  const line = (a, b, bend) => {
    const p = pos.get(a)
    const q = pos.get(b)
    if (!p || !q || a === b) return null
    // Two-way pairs bend apart so both arrows show.
    const mx = (p.x + q.x) / 2 + bend * (q.y - p.y) * 0.15
    const my = (p.y + q.y) / 2 - bend * (q.x - p.x) * 0.15
    const d = Math.hypot(q.x - mx, q.y - my) || 1
    const ex = q.x - ((q.x - mx) / d) * 30
    const ey = q.y - ((q.y - my) / d) * 30
    return `M${p.x},${p.y} Q${mx},${my} ${ex},${ey}`
  }
  return html`<div class="diagram-box">
    <svg class="diagram" viewBox=${`0 0 ${W} ${H}`} role="img" aria-label="who messaged whom, and handoffs">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#5b6b8c" /></marker>
        <marker id="arrow-h" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#c07a1a" /></marker>
      </defs>
      ${[...edges.entries()].map(([k, n]) => {
        const [a, b] = k.split("→")
        const d = line(a, b, 1)
        return d && html`<path class="edge msg" data-edge=${k} d=${d} stroke-width=${Math.min(1 + n, 6)} marker-end="url(#arrow)"><title>${k}: ${n} message(s)</title></path>`
      })}
      ${handoffs.map((h) => {
        const d = line(h.fromAgent, h.toAgent, 0)
        return d && html`<path class="edge handoff" data-handoff=${`${h.fromAgent}→${h.toAgent}`} d=${d} marker-end="url(#arrow-h)"><title>handoff ${h.fromAgent} → ${h.toAgent}${h.artifacts.length ? `: ${h.artifacts.join(", ")}` : ""}</title></path>`
      })}
      ${names.map((n) => {
        const p = pos.get(n)
        const st = members.find((t) => t.agent === n)?.status
        return html`<g class=${`node ${st ? `s-${st}` : "other"}`} data-node=${n}><circle cx=${p.x} cy=${p.y} r="26" /><text x=${p.x} y=${p.y + 4} text-anchor="middle">${n.length > 10 ? `${n.slice(0, 9)}…` : n}</text></g>`
      })}
      ${names.length === 0 ? html`<text x=${W / 2} y=${H / 2} text-anchor="middle" class="muted">no members yet</text>` : null}
    </svg>
    <div class="legend"><span class="l msg"></span> messages <span class="l handoff"></span> handoffs</div>
  </div>`
}
