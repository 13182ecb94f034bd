import { readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { redactText, summarizeArgs, ToolLog } from "../../plugin/telemetry/tool-log.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

describe("tool log", () => {
  it("redacts secret-looking keys and values, cuts long strings", () => {
    const s = summarizeArgs({
      command: "curl -H 'Authorization: Bearer abcdefghijklmnop1234' https://x",
      apiKey: "plain",
      nested: { password: "hunter2", list: [1, 2, 3, 4, 5, 6, 7] },
      body: "z".repeat(500),
    }) as Record<string, any>
    expect(s.command).toBe("curl -H 'Authorization: [redacted]' https://x")
    expect(s.apiKey).toBe("[redacted]")
    expect(s.nested.password).toBe("[redacted]")
    expect(s.nested.list).toEqual([1, 2, 3, 4, 5, "…(+2 items)"])
    expect(s.body).toBe("z".repeat(120) + "…(+380 chars)")
    expect(redactText("TOKEN=abc123 and password=xyz")).toBe("TOKEN=[redacted] and password=[redacted]")
    expect(redactText("key ghp_" + "a".repeat(36))).toBe("key [redacted]")
  })

  it("writes one line per call with duration from the injected clock", async () => {
    const deps = fakeDeps()
    const path = join(tempDir(), "nso", "log.jsonl")
    const log = new ToolLog(deps, path)
    log.before("c1")
    deps.time.advance(42)
    await log.after({ callId: "c1", sessionId: "ses_1", agent: "builder", tool: "bash", args: { command: "ls" } })
    await log.after({ callId: "c2", sessionId: "ses_1", tool: "edit", args: {}, error: "no such file" })
    await log.flush()
    const lines = readFileSync(path, "utf8").trim().split("\n").map((l) => JSON.parse(l))
    expect(lines[0]).toMatchObject({ session: "ses_1", agent: "builder", tool: "bash", durationMs: 42, ok: true })
    expect(lines[1]).toMatchObject({ tool: "edit", ok: false, error: "no such file" })
    expect(lines[1].durationMs).toBeUndefined()
  })
})
