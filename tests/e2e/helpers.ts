import type { OpencodeClient } from "@opencode-ai/sdk"
import { afterAll, afterEach, beforeAll } from "vitest"
import { MockModel } from "../../scripts/harness/mock-model.js"
import { startOpencode, type OpencodeOptions, type RunningOpencode } from "../../scripts/harness/opencode.js"

/** Polls a condition on state another process changes; bounded, never asserted on time. */
export async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 50))
  }
}

/** Sessions OpenCode reports busy. */
export async function busySessions(client: OpencodeClient): Promise<string[]> {
  const r = await client.session.status()
  return Object.entries(r.data ?? {})
    .filter(([, s]) => (s as { type: string }).type !== "idle")
    .map(([id]) => id)
}

/** Text of every message in a session, with the NSO metadata of each part. */
export async function transcript(client: OpencodeClient, id: string) {
  const r = await client.session.messages({ path: { id } })
  return (r.data ?? []).map((m) => ({
    role: m.info.role,
    text: m.parts.filter((p) => p.type === "text").map((p) => (p as { text: string }).text).join("\n"),
    nso: m.parts.map((p) => (p as { metadata?: { nso?: { source: string; from: string; kind?: string; ids: string[] } } }).metadata?.nso).find(Boolean),
  }))
}

/**
 * One real server and one scripted model shared by a describe block: started before its tests,
 * stopped after, the model's script cleared after each test.
 */
export function liveServer(opts: Omit<OpencodeOptions, "modelUrl">): { model: MockModel; readonly oc: RunningOpencode } {
  const model = new MockModel()
  let oc: RunningOpencode | undefined
  beforeAll(async () => {
    await model.start()
    oc = await startOpencode({ modelUrl: model.url, ...opts })
  })
  afterAll(async () => {
    await oc?.stop()
    await model.stop()
  })
  afterEach(() => model.reset())
  return {
    model,
    get oc() {
      if (!oc) throw new Error("the server is not started yet (use it inside a test)")
      return oc
    },
  }
}
