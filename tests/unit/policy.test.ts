import { describe, expect, it } from "vitest"
import { PriorityBuffer } from "../../plugin/buffer/buffer.js"
import { decideDelivery, type SessionActivity } from "../../plugin/buffer/policy.js"
import { formatBatch, header } from "../../plugin/buffer/format.js"
import { env, FakeTime } from "../helpers/fake-deps.js"

const opts = { pauseMs: 2000, maxHoldMs: 60_000 }

describe("delivery policy", () => {
  const t = () => new FakeTime()

  it("holds everything while the session is busy (the user is being answered)", () => {
    const time = t()
    const pending = [env({ kind: "question", priority: "high", time: time.now })]
    const d = decideDelivery(pending, { busy: true, runningTasks: 1 }, time.now, opts)
    expect(d.deliver).toEqual([])
    expect(d.why).toBe("busy")
  })

  it("holds while the user is active, then delivers one batch at the pause, highest first", () => {
    const time = t()
    const b = new PriorityBuffer()
    const status = env({ kind: "status", priority: "low", time: time.now })
    const done = env({ kind: "completion", priority: "medium", time: time.now })
    const q = env({ kind: "question", priority: "high", time: time.now })
    for (const x of [status, done, q]) b.push(x, time.now)
    const activity: SessionActivity = { busy: false, idleSince: time.now, lastUserMessageAt: time.now - 500, runningTasks: 1 }

    time.advance(1999)
    let d = decideDelivery(b.list(), activity, time.now, opts)
    expect(d.deliver).toEqual([])
    expect(d.why).toBe("waiting")
    expect(d.wakeAt).toBe(activity.idleSince! + 2000)

    time.advance(1)
    d = decideDelivery(b.list(), activity, time.now, opts)
    expect(d.why).toBe("pause")
    expect(d.deliver.map((e) => e.id)).toEqual([q.id, done.id, status.id])
    expect(d.reply).toBe(true)
  })

  it("a user message restarts the pause", () => {
    const time = t()
    const pending = [env({ kind: "status", priority: "medium", time: time.now })]
    const idleSince = time.now
    time.advance(1500)
    const d = decideDelivery(pending, { busy: false, idleSince, lastUserMessageAt: time.now, runningTasks: 1 }, time.now, opts)
    expect(d.deliver).toEqual([])
    expect(d.wakeAt).toBe(time.now + 2000)
  })

  it("delivers urgent items at the next idle moment without a pause, and only those", () => {
    const time = t()
    const urgent = env({ kind: "question", priority: "urgent", time: time.now })
    const other = env({ kind: "status", priority: "medium", time: time.now })
    const d = decideDelivery([urgent, other], { busy: false, idleSince: time.now, runningTasks: 1 }, time.now, opts)
    expect(d.why).toBe("urgent")
    expect(d.deliver.map((e) => e.id)).toEqual([urgent.id])
    expect(d.reply).toBe(true)
  })

  it("delivers a high item held past maxHoldMs without a pause", () => {
    const time = t()
    const high = env({ kind: "finding", priority: "high", time: time.now })
    let activity: SessionActivity = { busy: true, runningTasks: 2 }
    expect(decideDelivery([high], activity, time.now, opts).deliver).toEqual([])
    time.advance(60_000)
    activity = { busy: false, idleSince: time.now, lastUserMessageAt: time.now, runningTasks: 2 }
    const d = decideDelivery([high], activity, time.now, opts)
    expect(d.why).toBe("urgent")
    expect(d.deliver).toEqual([high])
    // A finding needs no answer: stored without a model turn.
    expect(d.reply).toBe(false)
  })

  it("sets a timer for the max-hold deadline when that comes before the pause", () => {
    const time = t()
    const high = env({ kind: "finding", priority: "high", time: time.now - 59_000 })
    const d = decideDelivery([high], { busy: false, idleSince: time.now, lastUserMessageAt: time.now, runningTasks: 1 }, time.now, opts)
    expect(d.wakeAt).toBe(time.now + 1000)
  })

  it("drops expired low items instead of delivering them", () => {
    const time = t()
    const b = new PriorityBuffer({ lowTtlMs: 1000 })
    const low = env({ kind: "status", priority: "low", time: time.now })
    b.push(low, time.now)
    time.advance(5000)
    const d = decideDelivery(b.list(), { busy: false, idleSince: 0, runningTasks: 0 }, time.now, opts)
    expect(d.deliver).toEqual([])
    expect(d.expired.map((e) => e.id)).toEqual([low.id])
  })

  it("asks for a reply only when something needs one", () => {
    const time = t()
    const idle: SessionActivity = { busy: false, idleSince: 0, runningTasks: 1 }
    const status = env({ kind: "status", time: time.now })
    const done = env({ kind: "completion", time: time.now })
    expect(decideDelivery([status, done], idle, time.now, opts).reply).toBe(false)
    // The last running task finishing does need one.
    expect(decideDelivery([done], { ...idle, runningTasks: 0 }, time.now, opts).reply).toBe(true)
    expect(decideDelivery([env({ kind: "failure" })], idle, time.now, opts).reply).toBe(true)
  })

  it("overflow during a long hold never loses a question", () => {
    const time = t()
    const b = new PriorityBuffer({ maxSize: 5 })
    const q = env({ kind: "question", priority: "low", time: time.now })
    b.push(q, time.now)
    for (let i = 0; i < 50; i++) b.push(env({ kind: "status", priority: "low", time: time.now }), time.now)
    expect(b.has(q.id)).toBe(true)
    const d = decideDelivery(b.list(), { busy: false, idleSince: 0, runningTasks: 1 }, time.now, opts)
    expect(d.deliver.map((e) => e.id)).toContain(q.id)
  })
})

describe("batch format", () => {
  it("puts the ids the Oracle needs in a visible header", () => {
    const e = env({ from: "builder", kind: "question", taskId: "tsk_abc123", questionId: "q_def456", priority: "high" })
    expect(header(e)).toBe("[NSO · builder · task tsk_abc123 · question q_def456]")
  })

  it("cuts long results with a pointer to task_result", () => {
    const e = env({ kind: "completion", taskId: "tsk_abc123", text: "x".repeat(100) })
    const text = formatBatch([e], { maxInlineChars: 10 })
    expect(text).toContain("x".repeat(10) + "\n… [cut: 90 more characters.")
    expect(text).toContain('tasks with id "tsk_abc123"')
  })
})

describe("a busy session", () => {
  it("gets nothing, not even what is addressed to the user (it would end the running tool loop)", async () => {
    const { decideDelivery } = await import("../../plugin/buffer/policy.js")
    const base = { source: "agent" as const, from: "builder", kind: "question" as const, priority: "urgent" as const, hops: 0, text: "?" }
    const d = decideDelivery([{ ...base, id: "msg_user01", time: 0, to: "user" }], { busy: true, runningTasks: 1 }, 10, { pauseMs: 1000, maxHoldMs: 60_000 })
    expect(d.deliver).toEqual([])
    expect(d.why).toBe("busy")
  })
})

describe("coalescing results while other tasks run", () => {
  it("gathers results that need no reply until the oldest is coalesceMs old; a reply-worthy batch goes at once", async () => {
    const done = (id: string, time: number) => ({ id, time, source: "agent" as const, from: "builder", to: "oracle", kind: "completion" as const, priority: "medium" as const, hops: 0, text: id })
    const opts = { pauseMs: 0, maxHoldMs: 60_000, coalesceMs: 1000 }
    const idle = { busy: false, idleSince: 0, runningTasks: 2 }
    const early = decideDelivery([done("msg_aaaaaa", 100), done("msg_bbbbbb", 600)], idle, 700, opts)
    expect(early.deliver).toEqual([])
    expect(early.wakeAt).toBe(1100)
    const later = decideDelivery([done("msg_aaaaaa", 100), done("msg_bbbbbb", 600)], idle, 1100, opts)
    expect(later.deliver.map((e) => e.id)).toEqual(["msg_aaaaaa", "msg_bbbbbb"])
    expect(later.reply).toBe(false)
    // The last task finished: the Oracle should speak now, with everything gathered.
    const last = decideDelivery([done("msg_aaaaaa", 100), done("msg_bbbbbb", 600)], { ...idle, runningTasks: 0 }, 700, opts)
    expect(last.deliver).toHaveLength(2)
    expect(last.reply).toBe(true)
  })
})
