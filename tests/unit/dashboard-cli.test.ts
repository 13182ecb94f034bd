import { writeFileSync } from "node:fs"
import { join } from "node:path"
import { beforeEach, describe, expect, it, onTestFinished, vi } from "vitest"
import { TOKEN_HEADER } from "../../plugin/dashboard/app.js"
import { Hub } from "../../plugin/dashboard/hub.js"
import { startDashboard } from "../../plugin/dashboard/server.js"
import { Journal } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import { dashboardServing, main } from "../../scripts/nso.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

async function run(args: string[]) {
  const lines: string[] = []
  const errors: string[] = []
  const code = await main(args, (s) => lines.push(s), (s) => errors.push(s))
  return { code, out: lines.join("\n"), err: errors.join("\n") }
}

async function project(): Promise<string> {
  const dir = tempDir()
  const { journal } = await Journal.open(fakeDeps(), nsoReducer, { dir: join(dir, ".opencode/nso"), fsync: false })
  await journal.append({ type: "question.asked", question: { id: "q_cli001", from: "builder", sessionId: "ses_2", text: "Which port?", urgency: "normal", options: [], askedAt: 1, status: "open" } })
  await journal.close()
  return dir
}

beforeEach(() => {
  vi.stubEnv("XDG_CONFIG_HOME", tempDir("nso-xdg-"))
  vi.stubEnv("OPENCODE_CONFIG", "")
  vi.stubEnv("OPENCODE_CONFIG_DIR", "")
  const until = dashboardServing.until
  return () => {
    vi.unstubAllEnvs()
    dashboardServing.until = until
  }
})

describe("nso dashboard", () => {
  it("prints the running server's URL when it answers", async () => {
    const dir = await project()
    const hub = new Hub()
    const running = await startDashboard({ hub, about: { project: dir, readOnly: false }, answer: async () => "", cancel: async () => "", telemetry: async () => ({}) }, { port: 0 })
    onTestFinished(() => running.close())
    writeFileSync(join(dir, ".opencode/nso/dashboard.url"), `${running.url}\n`)
    dashboardServing.until = () => Promise.reject(new Error("must not serve its own view"))
    const r = await run(["dashboard", "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toBe(`NSO dashboard (served by the running OpenCode server): ${running.url}`)
  })

  it("without a server (or with a stale URL file) serves a read-only view of the journal on 127.0.0.1, and says so", async () => {
    const dir = await project()
    writeFileSync(join(dir, ".opencode/nso/dashboard.url"), "http://127.0.0.1:9/?token=gone\n")
    let checked: { page: number; wrong: number; snapshot: { about: { readOnly: boolean }; items: { id: string }[] }; answer: number; answerText: string } | undefined
    dashboardServing.until = async () => {
      const url = new URL(/http:\/\/127\.0\.0\.1:\d+\/\?token=\S+/.exec(printed.join("\n"))![0])
      const token = url.searchParams.get("token")!
      const wrong = await fetch(`${url.origin}/?token=nope`)
      const snap = await fetch(`${url.origin}/api/snapshot?token=${token}`)
      const answer = await fetch(`${url.origin}/api/answer`, { method: "POST", headers: { [TOKEN_HEADER]: token }, body: JSON.stringify({ questionId: "q_cli001", answer: "8080" }) })
      checked = { page: (await fetch(url)).status, wrong: wrong.status, snapshot: (await snap.json()) as never, answer: answer.status, answerText: ((await answer.json()) as { error: string }).error }
    }
    const printed: string[] = []
    const code = await main(["dashboard", "--dir", dir], (s) => printed.push(s), () => {})
    expect(code).toBe(0)
    const out = printed.join("\n")
    expect(out).toContain("does not answer: its server has stopped")
    expect(out).toContain("Serving a READ-ONLY view of NSO's journal on 127.0.0.1")
    expect(checked).toMatchObject({ page: 200, wrong: 401, answer: 409, snapshot: { about: { readOnly: true }, items: [{ id: "q_cli001" }] } })
    expect(checked!.answerText).toContain("nso answer")
  })

  it("rejects a bad --port with exit 2", async () => {
    const dir = await project()
    const r = await run(["dashboard", "--dir", dir, "--port", "http"])
    expect(r.code).toBe(2)
    expect(r.err).toContain('--port must be a whole number from 0 to 65535 (0: any free port); got "http"')
  })
})
