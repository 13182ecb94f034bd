import { describe, expect, it } from "vitest"
import { PriorityBuffer, SortedArrayBuffer, type BufferOptions, type MessageBuffer } from "../../plugin/buffer/buffer.js"
import { JournaledBuffer } from "../../plugin/buffer/journaled.js"
import type { JournalEvent } from "../../plugin/protocol.js"
import { env } from "../helpers/fake-deps.js"

const T0 = 1_700_000_000_000

// One contract, every implementation (Hono-style): the fast buffer, the reference one, and the
// durable decorator around the fast one.
const implementations: [string, (o?: BufferOptions) => MessageBuffer][] = [
  ["PriorityBuffer", (o) => new PriorityBuffer(o)],
  ["SortedArrayBuffer", (o) => new SortedArrayBuffer(o)],
  ["JournaledBuffer(PriorityBuffer)", (o) => new JournaledBuffer(new PriorityBuffer(o), async () => {})],
]

describe.each(implementations)("MessageBuffer contract: %s", (_name, make) => {
  it("delivers highest priority first, FIFO within a priority", () => {
    const b = make()
    const a = env({ priority: "low" })
    const c = env({ priority: "high" })
    const d = env({ priority: "urgent" })
    const e = env({ priority: "high" })
    const f = env({ priority: "medium" })
    for (const x of [a, c, d, e, f]) expect(b.push(x, T0).accepted).toBe(true)
    expect(b.list().map((x) => x.id)).toEqual([d.id, c.id, e.id, f.id, a.id])
    expect(b.drain(2).map((x) => x.id)).toEqual([d.id, c.id])
    expect(b.size).toBe(3)
    expect(b.drain().map((x) => x.id)).toEqual([e.id, f.id, a.id])
    expect(b.size).toBe(0)
  })

  it("ignores a second push of the same id", () => {
    const b = make()
    const a = env()
    b.push(a, T0)
    b.push(a, T0)
    expect(b.size).toBe(1)
  })

  it("removes by id and keeps the rest in order", () => {
    const b = make()
    const xs = [env({ priority: "low" }), env({ priority: "high" }), env({ priority: "medium" })]
    for (const x of xs) b.push(x, T0)
    expect(b.remove([xs[1]!.id, "msg_missing"]).map((x) => x.id)).toEqual([xs[1]!.id])
    expect(b.has(xs[1]!.id)).toBe(false)
    expect(b.list().map((x) => x.id)).toEqual([xs[2]!.id, xs[0]!.id])
  })

  it("gives low messages a TTL and expires them", () => {
    const b = make({ lowTtlMs: 1000 })
    const low = env({ priority: "low", time: T0 })
    const med = env({ priority: "medium", time: T0 })
    b.push(low, T0)
    b.push(med, T0)
    expect(b.expire(T0 + 999)).toEqual([])
    const gone = b.expire(T0 + 1000)
    expect(gone.map((d) => [d.envelope.id, d.reason])).toEqual([[low.id, "expired"]])
    expect(b.list().map((x) => x.id)).toEqual([med.id])
  })

  it("on overflow drops expired messages first", () => {
    const b = make({ maxSize: 2, lowTtlMs: 10 })
    const old = env({ priority: "low", time: T0 })
    const keep = env({ priority: "medium", time: T0 })
    b.push(old, T0)
    b.push(keep, T0)
    const r = b.push(env({ priority: "medium" }), T0 + 50)
    expect(r.accepted).toBe(true)
    expect(r.dropped.map((d) => [d.envelope.id, d.reason])).toEqual([[old.id, "expired"]])
    expect(b.size).toBe(2)
  })

  it("on overflow drops the oldest of the lowest priority, and reports it", () => {
    const b = make({ maxSize: 3 })
    const m1 = env({ priority: "medium" })
    const l1 = env({ priority: "low" })
    const l2 = env({ priority: "low" })
    for (const x of [m1, l1, l2]) b.push(x, T0)
    const r = b.push(env({ priority: "high" }), T0)
    expect(r.dropped.map((d) => [d.envelope.id, d.reason])).toEqual([[l1.id, "overflow"]])
    expect(b.has(l2.id)).toBe(true)
    expect(b.size).toBe(3)
  })

  it("refuses a newcomer that is worth less than everything held", () => {
    const b = make({ maxSize: 2 })
    b.push(env({ priority: "high" }), T0)
    b.push(env({ priority: "high" }), T0)
    const low = env({ priority: "low" })
    const r = b.push(low, T0)
    expect(r.accepted).toBe(false)
    expect(r.dropped.map((d) => d.envelope.id)).toEqual([low.id])
    expect(b.has(low.id)).toBe(false)
  })

  it("never drops a question, completion or failure, even past the bound", () => {
    const b = make({ maxSize: 3 })
    const keep = [
      env({ kind: "question", priority: "low" }),
      env({ kind: "completion", priority: "low" }),
      env({ kind: "failure", priority: "low" }),
    ]
    for (const x of keep) b.push(x, T0)
    const status = env({ kind: "status", priority: "low" })
    expect(b.push(status, T0).accepted).toBe(false)
    const q = env({ kind: "question", priority: "high" })
    const r = b.push(q, T0)
    expect(r.accepted).toBe(true)
    expect(r.dropped).toEqual([])
    expect(b.size).toBe(4)
    for (const x of [...keep, q]) expect(b.has(x.id)).toBe(true)
  })

  it("rejects bad options with a TypeError naming the option", () => {
    expect(() => make({ maxSize: 0 })).toThrow(/`maxSize`.*positive integer.*`0`/)
    expect(() => make({ lowTtlMs: -1 })).toThrow(/`lowTtlMs`/)
  })
})

describe("JournaledBuffer", () => {
  it("journals accepted messages and every drop, and reports durability", async () => {
    const events: JournalEvent[] = []
    const b = new JournaledBuffer(new PriorityBuffer({ maxSize: 1 }), async (e) => {
      events.push(e)
    })
    const a = env({ priority: "low" })
    const c = env({ priority: "high" })
    b.push(a, T0)
    b.push(c, T0)
    await b.durable()
    expect(events.map((e) => e.type)).toEqual(["message.buffered", "message.dropped", "message.buffered"])
  })

  it("surfaces a failed journal write from durable()", async () => {
    const b = new JournaledBuffer(new PriorityBuffer(), async () => {
      throw new Error("disk full")
    })
    b.push(env(), T0)
    await expect(b.durable()).rejects.toThrow("disk full")
  })
})
