import * as fs from "node:fs/promises"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { z } from "zod"
import { compileCheck } from "../../plugin/journal/fastcheck.js"
import { readLines } from "../../plugin/journal/lines.js"
import { decodeRecord, encodeRecord } from "../../plugin/journal/record.js"
import { JournalEvent, JournalRecord, type Task } from "../../plugin/protocol.js"
import { env, tempDir } from "../helpers/fake-deps.js"

const task: Task = {
  id: "tsk_abcdef",
  agent: "builder",
  title: "Build",
  prompt: "do it",
  priority: "medium",
  status: "queued",
  parentSessionId: "ses_root",
  depth: 1,
  scope: ["src/**"],
  dependsOn: ["tsk_other1"],
  createdAt: 1,
  updatedAt: 2,
  lastActivityAt: 3,
}

/** One typical event of each kind replay sees in volume. */
const events: JournalEvent[] = [
  { type: "message.buffered", envelope: env({ kind: "question", taskId: "tsk_abcdef", text: "Grüße, 日本, 🎉" }) },
  { type: "message.dropped", id: "msg_abcdef", reason: "expired" },
  { type: "delivery.started", batchId: "dlv_1", sessionId: "ses_o", ids: ["msg_abcdef", "msg_bcdefg"] },
  { type: "delivery.confirmed", batchId: "dlv_1" },
  { type: "delivery.failed", batchId: "dlv_1", reason: "not found" },
  { type: "task.created", task },
  { type: "task.updated", id: "tsk_abcdef", patch: { status: "completed", result: "done", lastActivityAt: 5 } },
  {
    type: "question.asked",
    question: { id: "q_abcdef", from: "builder", sessionId: "ses_c", text: "Which?", urgency: "normal", options: ["a"], askedAt: 1, status: "open" },
  },
  { type: "question.timed_out", id: "q_abcdef" },
  { type: "question.answered", id: "q_abcdef", answer: "a", by: "user" },
  { type: "task.cancel_requested", id: "tsk_abcdef", by: "cli" },
  { type: "session.initialized", sessionId: "ses_x", root: true },
  // Team runs.
  {
    type: "workflow.created",
    workflow: {
      id: "wf_abcdef",
      team: "code-review",
      pattern: "hierarchical",
      goal: "Review the change — ünïcode 🎉",
      title: "Review the change",
      parentSessionId: "ses_root",
      parentWorkflowId: "wf_parent1",
      depth: 2,
      phase: "parallel_execution",
      startedBy: "orchestrator",
      handoffs: [{ from: "tsk_abcdef", to: "tsk_other1", fromAgent: "builder", toAgent: "scout", artifacts: ["out/one.csv"], at: 4 }],
      createdAt: 1,
      updatedAt: 2,
      endedAt: 3,
      result: "done",
    },
  },
  { type: "workflow.updated", id: "wf_abcdef", patch: { phase: "partial", endedAt: 5, result: 'Team "code-review" partial' } },
  { type: "workflow.handoff", id: "wf_abcdef", handoff: { from: "tsk_abcdef", to: "tsk_other1", fromAgent: "builder", toAgent: "scout", artifacts: [], at: 6 } },
  { type: "workflow.requested", team: "code-review", goal: "review the diff", sessionId: "ses_root", by: "user (cli)" },
  {
    type: "task.created",
    task: {
      ...task,
      id: "tsk_member1",
      acceptPartial: true,
      timeoutMs: 1500,
      maxTurns: 3,
      workflow: { id: "wf_abcdef", step: "member:0", role: "security reviewer", report: "workflow", parallel: 2 },
    },
  },
  { type: "task.cancel_requested", id: "wf_abcdef", by: "user (cli)" },
]

const record = (e: JournalEvent, s = 1): JournalRecord => ({ v: 1, w: "w_test01", s, t: 1_700_000_000_000 + s, e })

/** Decodes one line given as text, the way replay sees it. */
function decode(line: string): JournalRecord | undefined {
  const buf = Buffer.from(line)
  return decodeRecord(buf, 0, buf.length)
}

/** What the journal accepted before it had a fast path: JSON.parse, then zod. */
function reference(line: string): JournalRecord | undefined {
  let raw: unknown
  try {
    raw = JSON.parse(line)
  } catch {
    return undefined
  }
  const r = JournalRecord.safeParse(raw)
  return r.success ? r.data : undefined
}

describe("journal line format", () => {
  it("decodes every kind of record it encodes", () => {
    events.forEach((e, i) => {
      const line = encodeRecord(record(e, i + 1))
      expect(line.endsWith("\n")).toBe(true)
      expect(decode(line.slice(0, -1))).toEqual(record(e, i + 1))
    })
  })

  it("gives the same verdict as JSON.parse + zod, whatever the layout", () => {
    const good = encodeRecord(record(events[0]!)).slice(0, -1)
    const lines = [
      good,
      // Same record, other key order or spacing: no fast path, same result.
      JSON.stringify({ e: events[6], t: 5, s: 2, w: "w_test01", v: 1 }),
      JSON.stringify(record(events[3]!), null, 1).replace(/\n/g, ""),
      // A key after `e`: valid JSON, and zod drops the unknown key.
      good.slice(0, -1) + ',"x":1}',
      // Valid JSON that is not a valid record.
      good.replace('"msg_', '"nope_'),
      good.replace('"s":1', '"s":1.5'),
      good.replace('"s":1', '"s":-1'),
      good.replace('"t":1700000000001', '"t":17000000000000001'),
      good.replace('"w":"w_test01"', '"w":""'),
      good.replace('"v":1', '"v":2'),
      JSON.stringify(record({ type: "task.updated", id: "tsk_abcdef", patch: { status: "exploded" } } as unknown as JournalEvent)),
      JSON.stringify(record({ type: "no.such.event" } as unknown as JournalEvent)),
      JSON.stringify({ ...record(events[3]!), e: { ...events[3], extra: true } }),
      // Not JSON at all, or cut short.
      good.replace('"s":1', '"s":01'),
      good.slice(0, 40),
      good.slice(0, -1),
      "",
      "not json",
      '{"v":1,"w":"w\\u0041","s":1,"t":1,"e":{"type":"delivery.confirmed","batchId":"b"}}',
      '{"v":1,"w":"w_a","s":1,"t":-0,"e":{"type":"delivery.confirmed","batchId":"b"}}',
    ]
    for (const line of lines) expect({ line, got: decode(line) }).toEqual({ line, got: reference(line) })
  })

  it("keeps non-ASCII text intact across chunk boundaries", async () => {
    const dir = tempDir()
    const path = join(dir, "lines.txt")
    const texts = ["é", "日本語のテキスト", "🎉🎉", "plain", "ß".repeat(50)]
    await fs.writeFile(path, texts.join("\n") + "\ntail")
    for (const chunk of [1, 2, 3, 5, 7, 64]) {
      const fd = await fs.open(path, "r")
      const got: string[] = []
      const { consumed, rest } = await readLines(fd, 0, Infinity, (b, s, e) => got.push(b.toString("utf8", s, e)), chunk)
      await fd.close()
      expect(got).toEqual(texts)
      expect(rest.toString()).toBe("tail")
      expect(consumed).toBe(Buffer.byteLength(texts.join("\n") + "\n"))
    }
  })
})

describe("the generated check", () => {
  const check = compileCheck(JournalEvent)

  it("vouches for every typical event (else replay would fall back to zod for all of them)", () => {
    for (const e of events) expect({ type: e.type, ok: check(e) }).toEqual({ type: e.type, ok: true })
  })

  it("never says yes where zod would reject or change the value", () => {
    // Random damage to valid events; whenever the check says yes, zod must agree exactly.
    let seed = 42
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) % n)
    const junk: unknown[] = [undefined, null, "", "x", "tsk_", "msg_abcdef", -1, 0, 1.5, 2 ** 60, NaN, true, [], {}, ["a"], { a: 1 }]
    const mutate = (v: unknown, depth: number): unknown => {
      if (depth > 0 && v && typeof v === "object" && !Array.isArray(v)) {
        const o = { ...(v as Record<string, unknown>) }
        const keys = Object.keys(o)
        const k = rnd(4) === 0 ? "extra" : keys[rnd(keys.length)]!
        if (rnd(5) === 0) delete o[k]
        else o[k] = mutate(o[k], depth - 1)
        return o
      }
      if (Array.isArray(v) && v.length && rnd(2) === 0) return v.map((x) => mutate(x, depth - 1))
      return junk[rnd(junk.length)]
    }
    let yes = 0
    for (let i = 0; i < 10_000; i++) {
      const value = mutate(events[i % events.length], 1 + rnd(3))
      if (!check(value)) continue
      yes++
      const r = JournalEvent.safeParse(value)
      expect(r.success).toBe(true)
      expect(r.data).toStrictEqual(value)
    }
    expect(yes).toBeGreaterThan(50) // the damage sometimes leaves a valid event
  })

  it("leaves to zod what it does not understand", () => {
    expect(compileCheck(z.email())("a@b.co")).toBe(false)
    expect(compileCheck(z.string().trim())("a")).toBe(false)
    expect(compileCheck(z.string().transform((s) => s.length))("a")).toBe(false)
    expect(compileCheck(z.object({ a: z.number().default(1) }))({})).toBe(false)
    expect(compileCheck(z.object({ a: z.number() }).loose())({ a: 1 })).toBe(false)
    expect(compileCheck(z.int())(1.5)).toBe(false)
    expect(compileCheck(z.int())(2)).toBe(true)
    expect(compileCheck(z.object({ a: z.number() }))({ a: 1, b: 2 })).toBe(false)
    expect(compileCheck(z.object({ a: z.string().optional() }))({})).toBe(true)
    expect(compileCheck(z.object({ a: z.string().optional() }))({ a: undefined })).toBe(false)
    // An enum from an object accepts its values, never its keys.
    expect(compileCheck(z.enum({ Up: "up", Down: "down" }))("up")).toBe(true)
    expect(compileCheck(z.enum({ Up: "up", Down: "down" }))("Up")).toBe(false)
  })
})
