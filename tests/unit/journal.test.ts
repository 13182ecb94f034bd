import { execFile } from "node:child_process"
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import { join, resolve } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it } from "vitest"
import { Journal, type Reducer } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import type { JournalEvent, JournalRecord } from "../../plugin/protocol.js"
import { env, fakeDeps, tempDir } from "../helpers/fake-deps.js"

const run = promisify(execFile)

/** Collects the session ids of `session.initialized` events: easy to count and compare. */
const collect: Reducer<string[]> = {
  init: () => [],
  apply: (s, r: JournalRecord) => (r.e.type === "session.initialized" ? (s.push(r.e.sessionId), s) : s),
  serialize: (s) => s,
  deserialize: (d) => d as string[],
}
const ev = (i: number): JournalEvent => ({ type: "session.initialized", sessionId: `ses_${i}`, root: true })

async function open(dir: string, maxBytes = 1 << 20) {
  return Journal.open(fakeDeps(), collect, { dir, maxBytes, fsync: false })
}

describe("journal", () => {
  it("replays what was appended, in order", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    await Promise.all([0, 1, 2].map((i) => journal.append(ev(i))))
    await journal.append(ev(3))
    await journal.close()
    const { state, report } = await open(dir)
    expect(state).toEqual(["ses_0", "ses_1", "ses_2", "ses_3"])
    expect(report).toMatchObject({ records: 4, corrupt: 0, torn: 0 })
  })

  it("group-commits appends of one tick into one write", async () => {
    const dir = tempDir()
    const spy = { writes: 0 }
    // Counts writes on descriptors opened for appending, without reaching into the journal.
    const deps = fakeDeps({
      fs: {
        ...fs,
        open: (async (...a: Parameters<typeof fs.open>) => {
          const fh = await fs.open(...a)
          if (a[1] === "a" || a[1] === "a+") {
            const orig = fh.write.bind(fh) as (...w: unknown[]) => Promise<unknown>
            ;(fh as unknown as { write: (...w: unknown[]) => Promise<unknown> }).write = (...w: unknown[]) => {
              spy.writes++
              return orig(...w)
            }
          }
          return fh
        }) as typeof fs.open,
      },
    })
    const { journal } = await Journal.open(deps, collect, { dir, fsync: false })
    await Promise.all(Array.from({ length: 100 }, (_, i) => journal.append(ev(i))))
    expect(spy.writes).toBe(1)
    await journal.close()
  })

  it("skips a torn last line, counts it, and keeps appending cleanly after it", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    await journal.append(ev(1))
    await journal.close()
    await fs.appendFile(join(dir, "journal.jsonl"), '{"v":1,"w":"w_x","s":1,"t":1,"e":{"type":"sess')
    const second = await open(dir)
    expect(second.state).toEqual(["ses_1"])
    expect(second.report.torn).toBe(1)
    await second.journal.append(ev(2))
    await second.journal.close()
    const third = await open(dir)
    expect(third.state).toEqual(["ses_1", "ses_2"])
    expect(third.report.corrupt).toBe(1) // the old torn line is now a complete bad line
  })

  it("skips and counts garbage in the middle", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    await journal.append(ev(1))
    await fs.appendFile(join(dir, "journal.jsonl"), "not json\n" + '{"v":99,"w":"w_x","s":1,"t":1,"e":{}}\n')
    await journal.append(ev(2))
    await journal.close()
    const { state, report } = await open(dir)
    expect(state).toEqual(["ses_1", "ses_2"])
    expect(report.corrupt).toBe(2)
  })

  it("skips and counts records that are JSON but not valid records, in the writer's own layout too", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    await journal.append(ev(1))
    const bad = [
      // Exactly the layout the writer produces, but the event breaks the schema.
      '{"v":1,"w":"w_x","s":1,"t":1,"e":{"type":"session.initialized","sessionId":"ses_bad","root":"yes"}}',
      '{"v":1,"w":"w_x","s":2,"t":1,"e":{"type":"task.updated","id":"not-a-task-id","patch":{}}}',
      '{"v":1,"w":"w_x","s":3,"t":1.5,"e":{"type":"session.initialized","sessionId":"ses_bad","root":true}}',
      '{"v":1,"w":"w_x","s":4,"t":1,"e":{"type":"no.such.event"}}',
    ]
    await fs.appendFile(join(dir, "journal.jsonl"), bad.join("\n") + "\n")
    // Valid, though not in the writer's layout: still read.
    await fs.appendFile(join(dir, "journal.jsonl"), '{"e":{"type":"session.initialized","sessionId":"ses_2","root":true},"t":1,"s":5,"w":"w_x","v":1}\n')
    await journal.append(ev(3))
    await journal.close()
    const { state, report } = await open(dir)
    expect(state).toEqual(["ses_1", "ses_2", "ses_3"])
    expect(report.corrupt).toBe(4)
  })

  it("replays text in any script unchanged", async () => {
    const dir = tempDir()
    const deps = fakeDeps()
    const { journal } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    const texts = ["Grüße", "日本語", "🎉 done", "\u0000 and \n and \"quotes\""]
    const envs = texts.map((text) => env({ text }))
    for (const e of envs) await journal.append({ type: "message.buffered", envelope: e })
    await journal.close()
    const { state } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    expect([...state.pending.values()].map((e) => e.text)).toEqual(texts)
  })

  it("compacts past the size bound into a snapshot and replays the same state", async () => {
    const dir = tempDir()
    const { journal } = await open(dir, 4096)
    for (let i = 0; i < 200; i++) await journal.append(ev(i))
    await journal.flush()
    await journal.close()
    const snap = JSON.parse(await fs.readFile(join(dir, "snapshot.json"), "utf8"))
    expect(snap.state.length).toBeGreaterThan(0)
    expect((await fs.stat(join(dir, "journal.jsonl"))).size).toBeLessThan(4096 + 200)
    const { state, report } = await open(dir, 4096)
    expect(state).toEqual(Array.from({ length: 200 }, (_, i) => `ses_${i}`))
    expect(report.snapshot).toBe(true)
  })

  it("loses nothing when killed after rotating but before the snapshot", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    for (let i = 0; i < 5; i++) await journal.append(ev(i))
    await journal.close()
    // The crash: the log was renamed, no snapshot was written.
    await fs.rename(join(dir, "journal.jsonl"), join(dir, "journal.000000000000001.w_dead.compacting"))
    const second = await open(dir)
    await second.journal.append(ev(5))
    await second.journal.close()
    const third = await open(dir)
    expect(third.state).toEqual(["ses_0", "ses_1", "ses_2", "ses_3", "ses_4", "ses_5"])
    expect(third.report.recoveredCompactions).toBe(1)
    // The next compaction absorbs the left-over file.
    await third.journal.compact()
    await third.journal.close()
    expect((await fs.readdir(dir)).filter((f) => f.endsWith(".compacting"))).toEqual([])
    expect((await open(dir)).state).toHaveLength(6)
  })

  it("loses and duplicates nothing when killed after the snapshot but before cleanup", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    for (let i = 0; i < 5; i++) await journal.append(ev(i))
    await journal.flush()
    const live = await fs.readFile(join(dir, "journal.jsonl"))
    await journal.compact()
    await journal.append(ev(5))
    await journal.close()
    // The crash: the absorbed file is still there.
    const snap = JSON.parse(await fs.readFile(join(dir, "snapshot.json"), "utf8"))
    await fs.writeFile(join(dir, snap.absorbed[0]), live)
    const { state, report } = await open(dir)
    expect(state).toEqual(["ses_0", "ses_1", "ses_2", "ses_3", "ses_4", "ses_5"])
    expect(report.duplicates).toBe(0)
    expect(existsSync(join(dir, snap.absorbed[0]))).toBe(false)
  })

  it("a record written into a rotated file by a slow writer is written again, and replayed once", async () => {
    const dir = tempDir()
    const a = await open(dir)
    const b = await open(dir)
    await a.journal.append(ev(1))
    await b.journal.compact() // rotates under a's open descriptor
    await a.journal.append(ev(2))
    await a.journal.compact()
    await a.journal.close()
    await b.journal.close()
    const { state } = await open(dir)
    expect(state).toEqual(["ses_1", "ses_2"])
  })

  it("two processes appending 5,000 records each, with compactions, leave 10,000 intact records", async () => {
    const dir = tempDir()
    const dist = resolve("dist")
    const child = resolve("tests/helpers/journal-child.mjs")
    if (!existsSync(join(dist, "plugin/journal/journal.js"))) throw new Error("run `npm run build` first")
    await Promise.all([
      run(process.execPath, [child, dist, dir, "5000", String(1 << 30)]),
      // This one compacts every ~64 KiB while the other keeps appending.
      run(process.execPath, [child, dist, dir, "5000", String(64 * 1024)]),
    ])
    const { state, report } = await open(dir)
    expect(report.corrupt).toBe(0)
    expect(report.torn).toBe(0)
    expect(state).toHaveLength(10_000)
    expect(new Set(state).size).toBe(10_000)
  }, 60_000)
})

describe("NSO state replay", () => {
  it("delivers nothing twice and forgets nothing undelivered", async () => {
    const dir = tempDir()
    const deps = fakeDeps()
    const { journal } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    const [a, b, c] = [env({ kind: "question" }), env({ kind: "completion" }), env()]
    for (const e of [a, b, c]) await journal.append({ type: "message.buffered", envelope: e })
    await journal.append({ type: "delivery.started", batchId: "dlv_1", sessionId: "ses_o", ids: [a.id] })
    await journal.append({ type: "delivery.confirmed", batchId: "dlv_1" })
    await journal.append({ type: "delivery.started", batchId: "dlv_2", sessionId: "ses_o", ids: [b.id] })
    // Crash before dlv_2 is confirmed; c was never delivered.
    await journal.close()

    const { state } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    expect([...state.pending.keys()]).toEqual([c.id])
    expect(Object.fromEntries(state.inDoubt)).toEqual({ dlv_2: { sessionId: "ses_o", ids: [b.id] } })
    expect(state.delivered.has(a.id)).toBe(true)

    // A message re-sent after delivery is not buffered again.
    const { journal: j2 } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    await j2.append({ type: "message.buffered", envelope: a })
    await j2.append({ type: "delivery.failed", batchId: "dlv_2", reason: "not found in session" })
    await j2.compact()
    await j2.close()
    const { state: s3 } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    expect([...s3.pending.keys()].sort()).toEqual([b.id, c.id].sort())
    expect(s3.inDoubt.size).toBe(0)
  })
})

describe("following other writers", () => {
  it("hands out each foreign record once, including those in a log this process rotated", async () => {
    const dir = tempDir()
    const server = await open(dir)
    const cli = await open(dir)
    await cli.journal.append(ev(1))
    expect((await server.journal.readForeign()).map((r) => r.s)).toEqual([1])
    expect(await server.journal.readForeign()).toEqual([])
    await server.journal.append(ev(100)) // its own records are never handed out
    await cli.journal.append(ev(2))
    await server.journal.compact() // rotates before reading ev(2)
    await cli.journal.append(ev(3)) // notices the rotation, may write again into the new log
    const got = await server.journal.readForeign()
    expect(got.map((r) => (r.e as { sessionId: string }).sessionId)).toEqual(["ses_2", "ses_3"])
    expect(await server.journal.readForeign()).toEqual([])
    await server.journal.close()
    await cli.journal.close()
  })
})

describe("following other writers while compacting", () => {
  it("a read and a rotation at the same time hand out each record once", async () => {
    const dir = tempDir()
    const server = await open(dir)
    const cli = await open(dir)
    const seen: string[] = []
    const take = async () => {
      for (const r of await server.journal.readForeign()) seen.push((r.e as { sessionId: string }).sessionId)
    }
    for (let round = 0; round < 5; round++) {
      for (let i = 0; i < 10; i++) await cli.journal.append(ev(round * 10 + i))
      await Promise.all([take(), server.journal.compact(), take()])
    }
    await take()
    expect(seen).toEqual(Array.from({ length: 50 }, (_, i) => `ses_${i}`))
    await server.journal.close()
    await cli.journal.close()
  })
})

describe("snapshot bookkeeping", () => {
  it("forgets writers that have not written since the last compaction", async () => {
    const dir = tempDir()
    const server = await open(dir)
    for (let i = 0; i < 5; i++) {
      const cli = await open(dir)
      await cli.journal.append(ev(i))
      await cli.journal.close()
    }
    await server.journal.compact()
    const first = JSON.parse(await fs.readFile(join(dir, "snapshot.json"), "utf8"))
    expect(Object.keys(first.covered)).toHaveLength(6) // five CLI writers and the server
    await server.journal.append(ev(99))
    await server.journal.compact()
    const second = JSON.parse(await fs.readFile(join(dir, "snapshot.json"), "utf8"))
    expect(Object.keys(second.covered)).toEqual([server.journal.writer])
    await server.journal.close()
    expect((await open(dir)).state).toEqual(["ses_0", "ses_1", "ses_2", "ses_3", "ses_4", "ses_99"])
  })
})

describe("compaction while appends keep coming", () => {
  it("records appended during a compaction are not mistaken for ones it folded", async () => {
    const dir = tempDir()
    const server = await open(dir)
    const cli = await open(dir)
    await cli.journal.append(ev(1))
    // The server has written nothing yet; its first record waits while the compaction runs.
    const compacted = server.journal.compact()
    const appended = server.journal.append(ev(2))
    await Promise.all([compacted, appended])
    await server.journal.close()
    await cli.journal.close()
    const { state, report } = await open(dir)
    expect(state).toEqual(["ses_1", "ses_2"])
    expect(report.duplicates).toBe(0)
  })

  it("an explicit compact during a busy pump neither deadlocks nor loses records", async () => {
    const dir = tempDir()
    const { journal } = await open(dir)
    const writes: Promise<void>[] = []
    // Big batches so the pump is mid-loop when compact() is called.
    for (let i = 0; i < 3000; i++) writes.push(journal.append(ev(i)))
    await new Promise((r) => setImmediate(r))
    const compacted = journal.compact()
    for (let i = 3000; i < 3500; i++) writes.push(journal.append(ev(i)))
    await Promise.all([compacted, ...writes])
    await journal.close()
    const { state } = await open(dir)
    expect(state).toHaveLength(3500)
    expect(new Set(state).size).toBe(3500)
  })
})

describe("retention", () => {
  it("compaction forgets tasks that ended more than 30 days ago, and keeps the rest", async () => {
    const dir = tempDir()
    const deps = fakeDeps()
    const { journal } = await Journal.open(deps, nsoReducer, { dir, fsync: false })
    const task = (id: string) => ({ id, agent: "builder", title: id, prompt: "p", priority: "medium" as const, status: "queued" as const, parentSessionId: "ses_r", depth: 1, scope: [], dependsOn: [], createdAt: deps.time.now, updatedAt: deps.time.now, lastActivityAt: deps.time.now })
    await journal.append({ type: "task.created", task: task("tsk_oldone") })
    await journal.append({ type: "task.updated", id: "tsk_oldone", patch: { status: "completed", result: "r" } })
    await journal.append({ type: "task.created", task: task("tsk_running") })
    deps.time.advance(31 * 24 * 3600_000)
    await journal.append({ type: "task.created", task: task("tsk_recent") })
    await journal.append({ type: "task.updated", id: "tsk_recent", patch: { status: "completed", result: "r" } })
    await journal.compact()
    await journal.close()
    const { state } = await Journal.open(fakeDeps(), nsoReducer, { dir, fsync: false })
    expect([...state.tasks.keys()].sort()).toEqual(["tsk_recent", "tsk_running"])
  })
})
