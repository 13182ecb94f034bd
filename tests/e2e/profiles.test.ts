import { execFile } from "node:child_process"
import { existsSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { promisify } from "node:util"
import { beforeAll, describe, expect, it } from "vitest"
import { REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { liveServer } from "./helpers.js"

const run = promisify(execFile)

const FILES = {
  "docs/runbooks/deploy.md": "---\ntags: [deploy]\n---\n# Deploying the API\nRun `make release`, then watch the canary for 10 minutes. MARKER-DEPLOY-RUNBOOK\n",
  "docs/runbooks/billing.md": "---\ntags: [billing]\n---\n# Billing disputes\nRefunds over 100 EUR need approval. MARKER-BILLING-RUNBOOK\n",
  ".opencode/nso/agents/ops.md": "---\ndescription: Operations helper for this project\nrole: specialist\nknowledge:\n  - folder: docs/runbooks\n---\nYou are the ops agent of this project. MARKER-OPS-PROMPT\n",
  // Field-by-field override of a shipped profile: only the description changes.
  ".opencode/nso/agents/builder.yaml": "name: builder\ndescription: Builder tuned for this project\n",
  // Invalid: a role that does not exist. Reported; everything else keeps working.
  ".opencode/nso/agents/broken.yaml": "name: broken\ndescription: broken one\nprompt: hi\nrole: wizard\n",
}

describe("agent profiles on a real server", () => {
  const srv = liveServer({
      nso: { init: { sweepDelayMs: 50 }, agents: { reader: { description: "Reads only what it is allowed to", prompt: "You read.", tools: { allowed: ["read", "glob", "ask_user"] } } } },
      files: FILES,
  })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })

  const ask = async (agent: string, text: string) => {
    const s = (await oc.client.session.create({ body: { title: agent } })).data!.id
    await oc.client.session.prompt({ path: { id: s }, body: { agent, parts: [{ type: "text", text }] } })
    return s
  }

  it("a profiler (read-only) is refused write, edit and bash; nothing is written; the model reads the refusal", async () => {
    model.script([
      { when: { user: "profile the repo" }, reply: { toolCalls: [{ name: "write", args: { filePath: "profiler-wrote.md", content: "x" } }] }, times: 1 },
      { when: { toolResult: "write" }, reply: { toolCalls: [{ name: "edit", args: { filePath: "opencode.json", oldString: "mock", newString: "hacked" } }] }, times: 1 },
      { when: { toolResult: "edit" }, reply: { toolCalls: [{ name: "bash", args: { command: "touch profiler-ran.txt", description: "touch" } }] }, times: 1 },
      { when: { toolResult: "bash" }, reply: { text: "I could not change anything." }, times: 1 },
    ])
    await ask("profiler", "profile the repo")
    const first = model.requests.find((r) => r.lastUser.includes("profile the repo") && !r.lastToolResult)!
    // OpenCode's permissions already hide the tools…
    for (const t of ["write", "edit", "bash"]) expect(first.tools).not.toContain(t)
    // …and a call made anyway is refused, and the model is told so.
    const results = model.requests.filter((r) => r.lastToolResult !== undefined).map((r) => r.lastToolResult!)
    expect(results).toHaveLength(3)
    for (const [i, tool] of ["write", "edit", "bash"].entries()) expect(results[i]).toMatch(new RegExp(`${tool}`, "i"))
    for (const r of results) expect(r).toMatch(/unavailable|not available|refused|invalid|denied|no such tool/i)
    expect(existsSync(join(oc.projectDir, "profiler-wrote.md"))).toBe(false)
    expect(existsSync(join(oc.projectDir, "profiler-ran.txt"))).toBe(false)
    expect(readFileSync(join(oc.projectDir, "opencode.json"), "utf8")).not.toContain("hacked")
  })

  it("NSO's own guard refuses a tool outside a profile's allowed list, with a message the model can act on", async () => {
    model.script([
      { when: { user: "search for TODO" }, reply: { toolCalls: [{ name: "grep", args: { pattern: "TODO" } }] }, times: 1 },
      { when: { toolResult: "NSO refused" }, reply: { text: "I may not search." }, times: 1 },
    ])
    await ask("reader", "search for TODO")
    const refused = model.requests.find((r) => r.lastToolResult?.includes("NSO refused"))!
    expect(refused.lastToolResult).toContain("NSO refused grep: the reader agent may not use it — its profile allows only read, glob, ask_user.")
  })

  it("an executor may run bash but not edit files", async () => {
    model.script([
      { when: { user: "run the script" }, reply: { toolCalls: [{ name: "bash", args: { command: "echo ran > executor-ran.txt", description: "run" } }] }, times: 1 },
      { when: { toolResult: "" , hasTool: "bash" }, reply: { toolCalls: [{ name: "edit", args: { filePath: "opencode.json", oldString: "mock", newString: "hacked" } }] }, times: 1 },
      { when: { toolResult: "edit" }, reply: { text: "Ran it; editing is not allowed for me." }, times: 1 },
    ])
    await ask("executor", "run the script")
    const first = model.requests.find((r) => r.lastUser.includes("run the script") && !r.lastToolResult)!
    expect(first.tools).toContain("bash")
    expect(first.tools).not.toContain("edit")
    expect(readFileSync(join(oc.projectDir, "executor-ran.txt"), "utf8").trim()).toBe("ran")
    const refusal = model.requests.map((r) => r.lastToolResult ?? "").find((t) => /edit/i.test(t))
    expect(refusal).toMatch(/unavailable|not available|refused|invalid|denied|no such tool/i)
    expect(readFileSync(join(oc.projectDir, "opencode.json"), "utf8")).not.toContain("hacked")
  })

  it("a profile's prompt and its matching knowledge reach the model; non-matching knowledge does not", async () => {
    await ask("ops", "how do we deploy the api?")
    const req = model.requests.find((r) => r.lastUser.includes("deploy the api"))!
    expect(req.system).toContain("MARKER-OPS-PROMPT")
    expect(req.system).toContain("MARKER-DEPLOY-RUNBOOK")
    expect(req.system).toContain("## docs/runbooks/deploy.md")
    expect(req.system).not.toContain("MARKER-BILLING-RUNBOOK")
  })

  it("a project profile overrides a shipped one field by field; an invalid one is reported with file and field", async () => {
    const agents = (await oc.client.app.agents()).data!
    const builder = agents.find((a) => a.name === "builder")!
    expect(builder.description).toBe("Builder tuned for this project")
    expect(builder.prompt).toContain("You are the Builder, a background agent in an NSO team.")
    expect(agents.find((a) => a.name === "broken")).toBeUndefined()
    expect(agents.find((a) => a.name === "ops")).toBeDefined()
    const log = readFileSync(join(oc.projectDir, ".opencode/nso/nso.log"), "utf8")
    expect(log).toMatch(/\.opencode\/nso\/agents\/broken\.yaml: role: /)
    // nso agents shows the same picture, with where each profile came from.
    const { stdout } = await run(process.execPath, [join(REPO, "dist/scripts/nso.js"), "agents", "--dir", oc.projectDir, "--json"])
    const listed = JSON.parse(stdout) as { agents: { name: string; definedIn: string[]; role: string }[]; problems: string[] }
    expect(listed.agents.find((a) => a.name === "builder")!.definedIn).toEqual(["(nso) config/agents/10-team.yaml#2", ".opencode/nso/agents/builder.yaml"])
    expect(listed.problems.some((p) => /broken\.yaml: role:/.test(p))).toBe(true)
    expect(listed.agents.map((a) => a.name)).toEqual(expect.arrayContaining(["oracle", "builder", "janitor", "designer", "scout", "librarian", "profiler", "executor", "analyst", "orchestrator", "ops"]))
  })
})
