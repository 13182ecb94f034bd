import { mkdtemp, rm } from "node:fs/promises"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createDeps } from "../../plugin/deps.js"
import { chatMessageHook } from "../../plugin/opencode/hooks/chat-message.js"
import { systemHook } from "../../plugin/opencode/hooks/system.js"
import { toolAfterHook, toolBeforeHook } from "../../plugin/opencode/hooks/tools.js"
import { Options } from "../../plugin/options.js"
import { Runtime } from "../../plugin/runtime.js"
import { MockModel } from "../harness/mock-model.js"
import { startOpencode } from "../harness/opencode.js"
import { fmtMs, percentile, type Row } from "./util.js"

/** Per-call latency of NSO's hot hooks, in process, with realistic payloads, against a no-op. */
export async function hookBench(): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), "nso-bench-hooks-"))
  const rt = await Runtime.start(createDeps(), dir, Options.parse({}))
  const session = "ses_benchroot"
  rt.registry.learn(session, {})
  const chat = chatMessageHook(rt)
  const before = toolBeforeHook(rt)
  const after = toolAfterHook(rt)
  const system = systemHook(rt)
  const noop = async (..._a: unknown[]) => {}
  const msg = () => ({
    message: { id: "msg_x", sessionID: session, role: "user", agent: "oracle", time: { created: 0 }, model: { providerID: "p", modelID: "m" } },
    parts: [{ id: "prt_1", sessionID: session, messageID: "msg_x", type: "text", text: "Please implement the login form, with tests, and tell me when done." }],
  })
  const args = { filePath: "/project/src/login.ts", oldString: "a".repeat(400), newString: "b".repeat(400) }

  async function measure(fn: (i: number) => Promise<void>, n = 5000): Promise<number[]> {
    for (let i = 0; i < 200; i++) await fn(i) // warm-up
    const xs: number[] = []
    for (let i = 0; i < n; i++) {
      const t0 = performance.now()
      await fn(i)
      xs.push(performance.now() - t0)
    }
    return xs
  }
  const cases: [string, (i: number) => Promise<void>][] = [
    ["chat.message", (i) => chat({ sessionID: session, messageID: `m${i}` } as never, msg() as never)],
    ["tool.execute.before", (i) => before({ tool: "edit", sessionID: session, callID: `c${i}` }, { args })],
    ["tool.execute.after", (i) => after({ tool: "edit", sessionID: session, callID: `c${i}`, args }, { title: "edit", output: "ok", metadata: {} })],
    ["system.transform", () => system({ sessionID: session } as never, { system: [] })],
  ]
  const rows: Row[] = []
  const base = await measure(() => noop())
  for (const [name, fn] of cases) {
    const xs = await measure(fn)
    rows.push({
      section: "hooks",
      figure: `${name} added latency per call`,
      value: `p50 ${fmtMs(percentile(xs, 50) - percentile(base, 50))}`,
      target: "p50 ≤ 0.2 ms",
      note: `p99 ${fmtMs(percentile(xs, 99))}`,
    })
  }
  await rt.dispose()
  await rm(dir, { recursive: true, force: true })
  return rows
}

/** Plugin start inside a real server: first request naming the project, with NSO vs without. */
export async function startBench(): Promise<Row[]> {
  const model = new MockModel()
  await model.start()
  const firstRequest = async (plugin: boolean) => {
    const oc = await startOpencode({ modelUrl: model.url, plugin })
    try {
      const t0 = performance.now()
      await oc.client.session.list()
      return performance.now() - t0
    } finally {
      await oc.dispose()
    }
  }
  const withNso: number[] = []
  const without: number[] = []
  for (let i = 0; i < 3; i++) {
    without.push(await firstRequest(false))
    withNso.push(await firstRequest(true))
  }
  await model.stop()
  const w = percentile(withNso, 50)
  const b = percentile(without, 50)
  return [
    { section: "live", figure: "project start (first request), with NSO", value: fmtMs(w), note: `without NSO ${fmtMs(b)}; NSO adds ${fmtMs(w - b)} (median of 3)` },
  ]
}
