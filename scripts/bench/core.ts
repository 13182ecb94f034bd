import * as fs from "node:fs/promises"
import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import PQueue from "p-queue"
import { PriorityBuffer } from "../../plugin/buffer/buffer.js"
import { createDeps } from "../../plugin/deps.js"
import { Journal } from "../../plugin/journal/journal.js"
import { encodeRecord } from "../../plugin/journal/record.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import { PRIORITY_ORDER, type Envelope, type JournalEvent, type JournalRecord } from "../../plugin/protocol.js"
import { classify, type IncomingMessage } from "../../plugin/router/classify.js"
import { createIntentMonitor } from "../../plugin/router/intent.js"
import { route } from "../../plugin/router/route.js"
import { bestOf, fmtBytes, fmtMs, fmtRate, gc, timeAsync, type Row } from "./util.js"

const KINDS = ["question", "completion", "failure", "status", "finding"] as const

function envelopes(n: number, textLen = 120): Envelope[] {
  const text = "x".repeat(textLen)
  const out: Envelope[] = []
  for (let i = 0; i < n; i++) {
    out.push({
      id: `msg_${i.toString(36).padStart(8, "0")}`,
      time: 1_700_000_000_000 + i,
      source: "agent",
      from: "builder",
      to: "oracle",
      kind: KINDS[i % KINDS.length]!,
      priority: PRIORITY_ORDER[(i * 7) % 4]!,
      taskId: `tsk_${(i % 100).toString(36).padStart(6, "0")}`,
      hops: 0,
      text,
    })
  }
  return out
}

export async function bufferBench(): Promise<Row[]> {
  const N = 100_000
  const msgs = envelopes(N)
  const now = 1_700_000_000_000
  const rank = { urgent: 3, high: 2, medium: 1, low: 0 }

  const nso = await bestOf(5, () => {
    const b = new PriorityBuffer({ maxSize: N + 1 })
    for (const m of msgs) b.push(m, now)
    if (b.drain().length !== N) throw new Error("lost messages")
  })
  const pq = await bestOf(3, async () => {
    const q = new PQueue({ concurrency: 1, autoStart: false })
    let seen = 0
    for (const m of msgs) void q.add(() => void seen++, { priority: rank[m.priority] })
    q.start()
    await q.onIdle()
    if (seen !== N) throw new Error("lost messages")
  })
  // A naive buffer keeps one array sorted at every push (binary search + splice), as it must be
  // ready to deliver at any moment.
  const naive = await bestOf(3, () => {
    const arr: { r: number; n: number; m: Envelope }[] = []
    let n = 0
    for (const m of msgs) {
      const item = { r: rank[m.priority], n: n++, m }
      let lo = 0
      let hi = arr.length
      while (lo < hi) {
        const mid = (lo + hi) >> 1
        if (arr[mid]!.r >= item.r) lo = mid + 1
        else hi = mid
      }
      arr.splice(lo, 0, item)
    }
    if (arr.splice(0).length !== N) throw new Error("lost messages")
  })
  const rate = (ms: number) => N / (ms / 1000)
  return [
    { section: "buffer", figure: "enqueue+drain 100k, NSO PriorityBuffer", value: fmtRate(rate(nso)), target: "≥ 1 M/s, ≥ 2× p-queue", note: `${(pq / nso).toFixed(1)}× p-queue` },
    { section: "buffer", figure: "enqueue+drain 100k, p-queue (priority)", value: fmtRate(rate(pq)) },
    { section: "buffer", figure: "enqueue+drain 100k, naive sorted array", value: fmtRate(rate(naive)) },
  ]
}

export async function routerBench(): Promise<Row[]> {
  const intents = createIntentMonitor([
    { name: "build", agent: "builder", keywords: ["implement", "build", "fix"] },
    { name: "docs", agent: "librarian", pattern: "\\b(document|explain)\\b" },
    { name: "design", agent: "designer", keywords: ["ui", "layout", "api design"] },
  ])
  const samples: IncomingMessage[] = [
    { sessionId: "ses_root", parts: [{ text: "please implement the login form and add tests" }] },
    { sessionId: "ses_root", parts: [{ text: "[NSO · builder · task tsk_1 · question q_1]\nWhich database?", synthetic: true, nso: { source: "agent", from: "builder", kind: "question", ids: ["tsk_1", "q_1"] } }] },
    { sessionId: "ses_child", parentSessionId: "ses_root", parentAgent: "oracle", parts: [{ text: "Build the parser" }] },
    { sessionId: "ses_root", parts: [{ text: "Summarize the task", synthetic: true }] },
  ]
  const N = 1_000_000
  const ms = await bestOf(3, () => {
    let agent = 0
    for (let i = 0; i < N; i++) {
      const msg = samples[i & 3]!
      const c = classify(msg)
      const r = route({ source: c.source, kind: c.kind ?? "status", priority: "medium", text: msg.parts[0]!.text }, intents)
      if (r.handler === "agent") agent++
    }
    if (!agent) throw new Error("no agent routes")
  })
  return [{ section: "router", figure: "classify+route, mixed messages", value: fmtRate(N / (ms / 1000)), target: "≥ 500 k/s" }]
}

export async function journalBench(): Promise<Row[]> {
  const rows: Row[] = []
  const deps = createDeps()
  const msgs = envelopes(1000)
  const event = (i: number): JournalEvent =>
    i % 3 === 0
      ? { type: "message.buffered", envelope: msgs[i % 1000]! }
      : { type: "task.updated", id: `tsk_${(i % 100).toString(36).padStart(6, "0")}`, patch: { lastActivityAt: 1_700_000_000_000 + i } }

  for (const fsync of [true, false]) {
    const dir = await mkdtemp(join(tmpdir(), "nso-bench-"))
    const { journal } = await Journal.open(deps, nsoReducer, { dir, fsync, maxBytes: 1 << 30 })
    // Many appenders at once (e.g. 20 tasks reporting): group commit shares writes and syncs.
    const N = 100_000
    const { ms } = await timeAsync(async () => {
      const inflight: Promise<void>[] = []
      for (let i = 0; i < N; i++) {
        inflight.push(journal.append(event(i)))
        if (inflight.length === 1000) await Promise.all(inflight.splice(0))
      }
      await Promise.all(inflight)
    })
    // One appender that waits for each record: the latency a tool call pays.
    const lat: number[] = []
    for (let i = 0; i < 200; i++) {
      const t0 = performance.now()
      await journal.append(event(i))
      lat.push(performance.now() - t0)
    }
    lat.sort((a, b) => a - b)
    await journal.close()
    await rm(dir, { recursive: true, force: true })
    rows.push({
      section: "journal",
      figure: `appends/s, 1000 concurrent appenders, fsync ${fsync ? "on" : "off"}`,
      value: fmtRate(N / (ms / 1000)),
      target: fsync ? "≥ 50 k/s" : undefined,
      note: `one awaited append p50 ${fmtMs(lat[100]!)}`,
    })
  }

  // Replay of 1M records, written straight to a file in the writer's line format (how they got
  // there does not matter).
  const dir = await mkdtemp(join(tmpdir(), "nso-bench-"))
  const fh = await fs.open(join(dir, "journal.jsonl"), "w")
  let chunk: string[] = []
  let bytes = 0
  for (let i = 0; i < 1_000_000; i++) {
    const rec: JournalRecord = { v: 1, w: "w_bench", s: i + 1, t: 1_700_000_000_000 + i, e: event(i) }
    const line = encodeRecord(rec)
    bytes += line.length
    chunk.push(line)
    if (chunk.length === 10_000) {
      await fh.write(chunk.join(""))
      chunk = []
    }
  }
  await fh.write(chunk.join(""))
  await fh.close()
  gc()
  const { ms, value } = await timeAsync(() => Journal.open(deps, nsoReducer, { dir, fsync: false, maxBytes: 1 << 30 }))
  if (value.report.records !== 1_000_000) throw new Error(`replayed ${value.report.records} records`)
  await value.journal.close()
  await rm(dir, { recursive: true, force: true })
  rows.push({ section: "journal", figure: "replay 1M records", value: fmtMs(ms), target: "≤ 2 s", note: `${fmtBytes(bytes)} of JSONL` })
  return rows
}

export async function memoryBench(): Promise<Row[]> {
  const msgs = envelopes(10_000, 200)
  gc()
  const before = process.memoryUsage().heapUsed
  const b = new PriorityBuffer({ maxSize: 20_000 })
  // Copies, so the figure counts what the buffer holds and not the shared fixture.
  for (const m of msgs) b.push({ ...m, text: m.text.slice(0, 199) + String(m.id.length % 10) }, 1_700_000_000_000)
  msgs.length = 0
  gc()
  const after = process.memoryUsage().heapUsed
  if (b.size !== 10_000) throw new Error("lost messages")
  return [{ section: "buffer", figure: "memory, 10k buffered messages (200-char text)", value: fmtBytes(after - before), target: "≤ 10 MB" }]
}
