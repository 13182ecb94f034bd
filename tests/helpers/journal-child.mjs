// Appends N records to a journal from a separate process (used by the concurrency test).
// argv: distDir journalDir count maxBytes
import * as fs from "node:fs/promises"
const [, , dist, dir, count, maxBytes] = process.argv
const { Journal } = await import(`${dist}/plugin/journal/journal.js`)
const reducer = { init: () => [], apply: (s, r) => (s.push(r.e.sessionId), s), serialize: (s) => s, deserialize: (d) => d }
let n = 0
const deps = {
  fs,
  clock: { now: () => Date.now(), monotonic: () => performance.now() },
  ids: { id: (p) => `${p}_${process.pid}x${++n}` },
  log: { log: () => {} },
}
const { journal } = await Journal.open(deps, reducer, { dir, maxBytes: Number(maxBytes), fsync: false })
const writes = []
for (let i = 0; i < Number(count); i++) {
  writes.push(journal.append({ type: "session.initialized", sessionId: `ses_${process.pid}_${i}`, root: true }))
  // Mix batch sizes: sometimes wait, so the two processes really interleave their writes.
  if (i % 97 === 0) await Promise.all(writes.splice(0))
}
await Promise.all(writes)
await journal.close()
