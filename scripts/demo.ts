#!/usr/bin/env node
/**
 * `npm run demo`: a real OpenCode server with NSO and a scripted model on 127.0.0.1, playing a
 * short story through the SDK, then a timeline of what each party saw.
 */
import { join } from "node:path"
import { MockModel } from "./harness/mock-model.js"
import { cleanup, readJsonl, startOpencode } from "./harness/opencode.js"

const t0 = Date.now()
const timeline: { at: number; who: string; what: string }[] = []
const note = (who: string, what: string) => timeline.push({ at: Date.now() - t0, who, what })

const model = new MockModel()
await model.start()
model.script([
  { when: { user: "remember our goal" }, reply: { toolCalls: [{ name: "project_context", args: { action: "update", goal: "Ship the login page", note: "Kick-off with the user" } }] }, times: 1 },
  { when: { toolResult: "Updated." }, reply: { text: "Noted: our goal is to ship the login page." } },
])
note("demo", `scripted model on ${model.url}`)
const oc = await startOpencode({ modelUrl: model.url, files: { ".opencode/context/00_meta/tech-stack.md": "# Tech stack\nTypeScript, Node 20, vitest.\n" } })
note("demo", `opencode serve on ${oc.url}, project ${oc.projectDir}`)
try {
  const session = (await oc.client.session.create({ body: { title: "Demo" } })).data!
  note("user", "remember our goal: ship the login page")
  await oc.client.session.prompt({ path: { id: session.id }, body: { parts: [{ type: "text", text: "remember our goal: ship the login page" }] } })
  const first = model.requests.find((r) => !r.isTitle)!
  note("oracle", `model request 1: system prompt ${first.system.length} chars, memory loaded: ${first.system.includes("Tech stack")}, tools: ${first.tools.length}`)
  for (const r of model.requests.filter((r) => !r.isTitle)) note("oracle", r.reply.toolCalls ? `calls ${r.reply.toolCalls.map((c) => c.name).join(", ")}` : `says: ${r.reply.text}`)
  // An agent's message, injected the way NSO injects (synthetic part + metadata): tagged agent.
  await oc.client.session.prompt({
    path: { id: session.id },
    body: { noReply: true, parts: [{ type: "text", text: "[NSO · builder · status]\nScaffolded the login form.", synthetic: true, metadata: { nso: { source: "agent", from: "builder", kind: "status", ids: [] } } }] },
  })
  note("builder", "status injected: Scaffolded the login form.")
  await new Promise((r) => setTimeout(r, 300))
  for (const e of readJsonl(join(oc.projectDir, ".opencode/nso/init.log")) as { session: string; created: string[]; steps: { step: string; ms: number }[] }[])
    note("nso", `init ${e.session}: ${e.steps.map((s) => `${s.step} ${s.ms} ms`).join(", ")}${e.created.length ? `; created ${e.created.join(", ")}` : ""}`)
  for (const r of readJsonl(join(oc.projectDir, ".opencode/nso/journal.jsonl")) as { e: { type: string; source?: string; from?: string } }[])
    if (r.e.type === "message.classified") note("nso", `classified a message: source=${r.e.source} from=${r.e.from}`)
  for (const l of readJsonl(join(oc.projectDir, ".opencode/nso/log.jsonl")) as { tool: string; agent: string; ok: boolean; durationMs: number }[])
    note("nso", `tool log: ${l.agent} ran ${l.tool} (${l.ok ? "ok" : "error"}, ${l.durationMs} ms)`)
} finally {
  await oc.stop()
  await model.stop()
  cleanup(join(oc.projectDir, ".."))
}
console.log("\nNSO demo — what each party saw\n")
for (const e of timeline.sort((a, b) => a.at - b.at)) console.log(`${String(e.at).padStart(6)} ms  ${e.who.padEnd(8)} ${e.what}`)
