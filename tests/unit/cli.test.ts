import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { main } from "../../scripts/nso.js"
import { Journal } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import { env, fakeDeps, tempDir } from "../helpers/fake-deps.js"

async function run(args: string[]) {
  const lines: string[] = []
  const code = await main(args, (s) => lines.push(s))
  return { code, out: lines.join("\n") }
}

describe("nso CLI", () => {
  it("status reads the journal without writing to it", async () => {
    const dir = tempDir()
    const { journal } = await Journal.open(fakeDeps(), nsoReducer, { dir: join(dir, ".opencode/nso"), fsync: false })
    await journal.append({ type: "message.buffered", envelope: env({ sessionId: "ses_1" }) })
    await journal.append({ type: "session.initialized", sessionId: "ses_1", root: true })
    await journal.close()
    const before = readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")
    const human = await run(["status", "--dir", dir])
    expect(human.code).toBe(0)
    expect(human.out).toContain("Pending agent messages: 1")
    expect(human.out).toContain("Sessions initialised: 1")
    const json = await run(["status", "--dir", dir, "--json"])
    expect(JSON.parse(json.out)).toMatchObject({ pendingMessages: 1, sessionsInitialized: 1, journal: { records: 2 } })
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")).toBe(before)
  })

  it("context sets and reads the shared state", async () => {
    const dir = tempDir()
    expect((await run(["context", "-C", dir, "--goal", "Ship v1", "--note", "kick-off"])).code).toBe(0)
    const r = await run(["context", "-C", dir, "--json"])
    expect(JSON.parse(r.out)).toMatchObject({ goal: "Ship v1", notes: [{ by: "user", text: "kick-off" }] })
  })

  it("log filters and limits, and rejects a bad limit with exit 2", async () => {
    const dir = tempDir()
    const { ToolLog } = await import("../../plugin/telemetry/tool-log.js")
    const log = new ToolLog(fakeDeps(), join(dir, ".opencode/nso/log.jsonl"))
    for (const tool of ["bash", "edit", "bash"]) await log.after({ callId: tool, sessionId: "ses_1", tool, args: {} })
    await log.flush()
    const r = await run(["log", "-C", dir, "--tool", "bash", "--json"])
    expect(JSON.parse(r.out)).toHaveLength(2)
    expect((await run(["log", "-C", dir, "--limit", "0"])).code).toBe(2)
  })

  it("help everywhere, and a clear error for unknown things", async () => {
    expect((await run(["--help"])).out).toContain("Commands:")
    expect((await run(["log", "--help"])).out).toContain("--limit")
    expect((await run(["nope"])).code).toBe(2)
    expect((await run(["status", "--bogus"])).code).toBe(2)
  })
})
