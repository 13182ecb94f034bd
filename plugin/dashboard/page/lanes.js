// The three lanes: what needs the user, what runs (per Oracle session, as a tree), what is done.
import { useState } from "preact/hooks"
import { act, ago, fmtTokens, html, shortId, Status, TERMINAL, TERMINAL_PHASES } from "./api.js"

const URGENCY = { urgent: 0, normal: 1 }
const PRIORITY = { high: 0, medium: 1, low: 2 }
/** Done tasks shown before "show all". */
const DONE_SHOWN = 50

export function Lanes({ store, now }) {
  const tasks = store.maps.task
  const questions = [...store.maps.question.values()]
    .filter((q) => q.status === "open")
    .sort((a, b) => URGENCY[a.urgency] - URGENCY[b.urgency] || (PRIORITY[tasks.get(a.taskId)?.priority] ?? 1) - (PRIORITY[tasks.get(b.taskId)?.priority] ?? 1) || a.askedAt - b.askedAt)
  const all = [...tasks.values()]
  const running = all.filter((t) => !TERMINAL.has(t.status))
  const done = all.filter((t) => TERMINAL.has(t.status)).sort((a, b) => b.updatedAt - a.updatedAt)
  const doneRuns = [...store.maps.run.values()].filter((w) => TERMINAL_PHASES.has(w.phase)).sort((a, b) => b.updatedAt - a.updatedAt)
  return html`
    <div class="lanes">
      <section class="lane needs" data-lane="needs">
        <h2>Needs you <span class="n">${questions.length}</span></h2>
        ${questions.length ? questions.map((q) => html`<${QuestionCard} key=${q.id} q=${q} task=${tasks.get(q.taskId)} now=${now} readOnly=${store.about.readOnly} />`) : html`<p class="empty">Nothing waits for you.</p>`}
      </section>
      <section class="lane running" data-lane="running">
        <h2>Running <span class="n">${running.length}</span></h2>
        <${Running} tasks=${running} runs=${store.maps.run} questions=${questions} now=${now} readOnly=${store.about.readOnly} />
      </section>
      <section class="lane done" data-lane="done">
        <h2>Done <span class="n">${done.length}</span></h2>
        ${doneRuns.map((w) => html`<details class=${`card result r-${w.phase}`} data-run=${w.id} data-phase=${w.phase}>
          <summary><span class="mark">${w.phase === "completed" ? "✓" : w.phase === "partial" ? "◐" : "✗"}</span><span class="badge team">team</span> <b>${w.team}</b> <span class="title">${w.title}</span>
            ${w.phase !== "completed" ? html`<${Status} status=${w.phase} />` : null}<span class="when">${ago(w.updatedAt, now)} ago</span></summary>
          <pre class="out">${w.result ?? "(no result)"}</pre>
        </details>`)}
        <${Done} tasks=${done} now=${now} />
      </section>
    </div>
  `
}

function QuestionCard({ q, task, now, readOnly }) {
  const [text, setText] = useState("")
  const [state, setState] = useState({ busy: false })
  const send = async (answer) => {
    if (!answer.trim()) return setState({ error: "Write an answer first." })
    setState({ busy: true })
    try {
      setState({ ok: await act("/api/answer", { questionId: q.id, answer }) })
    } catch (err) {
      setState({ error: err.message })
    }
  }
  return html`
    <article class=${`card question ${q.urgency === "urgent" ? "urgent" : ""}`} data-question=${q.id}>
      <div class="meta">
        <b>${q.from}</b>${task ? html` · <span title=${task.id}>${task.title}</span>` : null}
        ${q.urgency === "urgent" ? html` <span class="badge s-urgent">urgent</span>` : null}
        <span class="when">${ago(q.askedAt, now)} ago</span>
      </div>
      <p class="qtext">${q.text}</p>
      ${q.timedOutAt ? html`<p class="hint">The agent stopped waiting and went on with its assumptions; your answer still reaches it.</p>` : null}
      ${readOnly
        ? html`<p class="hint">Answer with <code>nso answer ${q.id} …</code></p>`
        : html`
            ${q.options.length
              ? html`<div class="options">${q.options.map((o) => html`<button class="opt" disabled=${state.busy} onClick=${() => send(o)}>${o}</button>`)}</div>`
              : null}
            <form class="answer" onSubmit=${(e) => (e.preventDefault(), send(text))}>
              <input name="answer" placeholder=${q.options.length ? "…or write an answer" : "Your answer"} value=${text} onInput=${(e) => setText(e.currentTarget.value)} disabled=${state.busy} />
              <button type="submit" class="primary" disabled=${state.busy}>Answer</button>
            </form>
          `}
      ${state.error ? html`<p class="error">${state.error}</p>` : null}
      ${state.ok ? html`<p class="ok">${state.ok}</p>` : null}
    </article>
  `
}

function Running({ tasks, runs, questions, now, readOnly }) {
  if (!tasks.length) return html`<p class="empty">No background work running.</p>`
  const byRoot = new Map()
  for (const t of tasks) byRoot.set(t.root, [...(byRoot.get(t.root) ?? []), t])
  const ids = new Set(tasks.map((t) => t.id))
  const asking = new Set(questions.map((q) => q.taskId))
  const liveRuns = [...runs.values()].filter((w) => !TERMINAL_PHASES.has(w.phase))
  return html`
    ${liveRuns.map((w) => html`<${RunStrip} key=${w.id} run=${w} readOnly=${readOnly} />`)}
    ${[...byRoot.entries()].map(([root, list]) => {
      const children = new Map()
      for (const t of list) {
        const parent = t.parentTaskId && ids.has(t.parentTaskId) ? t.parentTaskId : ""
        children.set(parent, [...(children.get(parent) ?? []), t])
      }
      for (const l of children.values()) l.sort((a, b) => a.createdAt - b.createdAt)
      const rows = []
      const walk = (parent, depth) => {
        for (const t of children.get(parent) ?? []) {
          rows.push([t, depth])
          walk(t.id, depth + 1)
        }
      }
      walk("", 0)
      return html`
        <div class="session" data-session=${root}>
          <div class="session-head">Oracle session <code>${shortId(root)}</code></div>
          ${rows.map(([t, depth]) => html`<${TaskRow} key=${t.id} t=${t} depth=${depth} now=${now} asking=${asking.has(t.id)} readOnly=${readOnly} />`)}
        </div>
      `
    })}
  `
}

function CancelButton({ id, label = "Cancel", readOnly }) {
  const [state, setState] = useState({})
  if (readOnly) return null
  return html`
    <span class="cancel-wrap">
      <button class="cancel" data-cancel=${id} disabled=${state.busy} onClick=${async () => {
        setState({ busy: true })
        try {
          setState({ ok: await act("/api/cancel", { id }) })
        } catch (err) {
          setState({ error: err.message })
        }
      }}>${state.busy ? "Cancelling…" : label}</button>
      ${state.error ? html`<span class="error">${state.error}</span>` : null}
    </span>
  `
}

function TaskRow({ t, depth, now, asking, readOnly }) {
  return html`
    <div class=${`task d${Math.min(depth, 4)}`} data-task=${t.id} data-status=${t.status}>
      <div class="line1">
        <span class="agent">${t.agent}</span>
        <span class="title" title=${t.prompt}>${t.title}</span>
        <${Status} status=${asking && t.status === "running" ? "waiting_for_answer" : t.status} />
        <${CancelButton} id=${t.id} readOnly=${readOnly} />
      </div>
      <div class="line2">
        <span title="since it was created">elapsed ${ago(t.createdAt, now)}</span>
        <span title="last activity">active ${ago(t.lastActivityAt, now)} ago</span>
        <span title="tokens">${fmtTokens(t.tokens)} tok</span>
        ${t.role ? html`<span class="role">${t.role}</span>` : null}
        <code class="id">${t.id}</code>
      </div>
    </div>
  `
}

function RunStrip({ run, readOnly }) {
  return html`
    <div class="runstrip" data-run=${run.id}>
      <span class="badge team">team</span> <b>${run.team}</b> <span class="muted">${run.pattern.replaceAll("_", " ")}</span> · ${run.title}
      <${Status} status=${run.phase} />
      <a href="#teams" class="muted" onClick=${() => document.querySelector('[data-tab="teams"]')?.click()}>diagram →</a>
      <${CancelButton} id=${run.id} label="Cancel run" readOnly=${readOnly} />
    </div>
  `
}

function Done({ tasks, now }) {
  const [all, setAll] = useState(false)
  if (!tasks.length) return html`<p class="empty">Nothing finished yet.</p>`
  const shown = all ? tasks : tasks.slice(0, DONE_SHOWN)
  return html`
    ${shown.map(
      (t) => html`
        <details class=${`card result r-${t.status}`} data-task=${t.id} data-status=${t.status}>
          <summary>
            <span class="mark">${t.status === "completed" ? "✓" : t.status === "failed" ? "✗" : "■"}</span>
            <span class="agent">${t.agent}</span> <span class="title">${t.title}</span>
            ${t.status !== "completed" ? html`<${Status} status=${t.status} />` : null}
            <span class="when">${ago(t.updatedAt, now)} ago · ${fmtTokens(t.tokens)} tok</span>
          </summary>
          <pre class="out">${t.status === "completed" ? (t.result ?? "(no text)") : (t.error ?? "no details")}</pre>
        </details>
      `,
    )}
    ${tasks.length > shown.length ? html`<button class="more" onClick=${() => setAll(true)}>Show all ${tasks.length}</button>` : null}
  `
}
