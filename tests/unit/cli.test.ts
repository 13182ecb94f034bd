import { spawn } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { describe, expect, it, onTestFinished, vi } from "vitest"
import { limits } from "../../scripts/nso.js"
import { isolateConfig, run } from "../helpers/cli.js"
import { parseJsonc, serverFor, stripJsonc } from "../../scripts/project.js"
import { Journal } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import type { JournalEvent } from "../../plugin/protocol.js"
import { env, fakeDeps, tempDir } from "../helpers/fake-deps.js"

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..")


/** Writes files under `root` (path → content; a path ending in / is a folder). */
function files(root: string, spec: Record<string, string>): string {
  for (const [rel, content] of Object.entries(spec)) {
    const p = join(root, rel)
    if (rel.endsWith("/")) mkdirSync(p, { recursive: true })
    else {
      mkdirSync(dirname(p), { recursive: true })
      writeFileSync(p, content)
    }
  }
  return root
}

/** A journal with one pending message, so `status` has something to show. */
async function journalAt(stateDir: string): Promise<void> {
  const { journal } = await Journal.open(fakeDeps(), nsoReducer, { dir: stateDir, fsync: false })
  await journal.append({ type: "message.buffered", envelope: env({ sessionId: "ses_1" }) })
  for (const id of ["q_first", "q_second"])
    await journal.append({ type: "question.asked", question: { id, from: "builder", sessionId: "ses_2", text: "Port?", urgency: "normal", options: [], askedAt: 1, status: "open" } })
  await journal.close()
}

isolateConfig()

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
    expect(human.out).toContain("Dashboard: not running (nso dashboard serves a read-only view)")
    const json = await run(["status", "--dir", dir, "--json"])
    expect(JSON.parse(json.out)).toMatchObject({ pendingMessages: 1, sessionsInitialized: 1, journal: { records: 2 } })
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")).toBe(before)
  })

  it("context sets and reads the shared state", async () => {
    const dir = files(tempDir(), { ".opencode/nso/": "" })
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

describe("nso finds the project", () => {
  it("from a subfolder: the nearest folder with opencode.json(c) or .opencode/, up to the git root", async () => {
    const dir = files(tempDir(), { ".git/": "", "opencode.json": "{}", "src/deep/": "" })
    await journalAt(join(dir, ".opencode/nso"))
    const r = await run(["status", "--dir", join(dir, "src/deep"), "--json"])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({ project: dir, foundFrom: join(dir, "src/deep"), pendingMessages: 1 })
    const human = await run(["status", "-C", join(dir, "src")])
    expect(human.out).toContain(`Project: ${dir} (found from ${join(dir, "src")})`)
  })

  it("the current folder is where the search starts when --dir is not given", async () => {
    const dir = files(tempDir(), { ".git/": "", ".opencode/": "", "lib/": "" })
    await journalAt(join(dir, ".opencode/nso"))
    const cwd = vi.spyOn(process, "cwd").mockReturnValue(join(dir, "lib"))
    onTestFinished(() => cwd.mockRestore())
    expect(JSON.parse((await run(["status", "--json"])).out)).toMatchObject({ project: dir })
  })

  it("does not look above the git root", async () => {
    // An opencode.json outside the repository is not this repository's project.
    const outer = files(tempDir(), { "opencode.json": "{}", ".opencode/nso/": "", "repo/.git/": "", "repo/src/": "" })
    const r = await run(["tasks", "--dir", join(outer, "repo/src")])
    expect(r.code).toBe(1)
    expect(r.err).toContain(`no OpenCode project at or above ${join(outer, "repo/src")}`)
    expect(r.err).toContain(`up to the git root ${join(outer, "repo")}`)
  })

  it("a wrong --dir is an error naming the folder, not an empty answer", async () => {
    const missing = join(tempDir(), "nope")
    const r = await run(["tasks", "--dir", missing])
    expect(r.code).toBe(2)
    expect(r.err).toContain(`no such folder: ${missing}`)
    const json = await run(["status", "--dir", missing, "--json"])
    expect(json.code).toBe(2)
    expect(JSON.parse(json.out).error).toContain(missing)
    const notProject = files(tempDir(), { ".git/": "", "docs/": "" })
    const r2 = await run(["tasks", "--dir", join(notProject, "docs")])
    expect(r2.code).toBe(1)
    expect(r2.err).toContain(join(notProject, "docs"))
  })

  it("says clearly when the project has no NSO state, and where NSO state does exist", async () => {
    const root = files(tempDir(), { ".git/": "", "opencode.json": "{}", "app/opencode.json": JSON.stringify({ plugin: [join(REPO, "plugin/index.ts")] }) })
    await journalAt(join(root, ".opencode/nso"))
    const r = await run(["tasks", "--dir", join(root, "app")])
    expect(r.code).toBe(1)
    expect(r.err).toContain(`No NSO state in ${join(root, "app")} (.opencode/nso/ not found). Is NSO loaded in this project?`)
    expect(r.err).toContain(`NSO is in its plugin list (${join(REPO, "plugin/index.ts")}`)
    expect(r.err).toContain(`NSO state exists in ${root}: try --dir ${root}`)
    for (const cmd of [["status"], ["questions"], ["log"], ["context"], ["answer", "q_1", "yes"], ["cancel", "tsk_1"]])
      expect((await run([...cmd, "--dir", join(root, "app")])).code).toBe(1)
    // Listing profiles needs no state.
    expect((await run(["agents", "--dir", join(root, "app"), "--json"])).code).toBe(0)
    // Without a plugin entry, it says that too.
    const bare = files(tempDir(), { ".git/": "", "opencode.json": "{}" })
    expect((await run(["status", "--dir", bare])).err).toMatch(/NSO is not found in the plugin list of .*opencode\.json/)
  })

  it("reads opencode.jsonc with comments and trailing commas, and takes NSO's options from it", async () => {
    const dir = files(tempDir(), {
      ".git/": "",
      "opencode.jsonc": `// project config
{
  "$schema": "https://opencode.ai/config.json", /* a URL with // inside a string stays */
  "plugin": [
    ["${join(REPO, "plugin/index.ts")}", {
      "stateDir": "var/nso-state", // NSO's state somewhere else
    }],
  ],
}
`,
    })
    await journalAt(join(dir, "var/nso-state"))
    const r = await run(["status", "--dir", dir, "--json"])
    expect(r.err).toBe("")
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({ pendingMessages: 1, plugin: { entries: [{ source: join(dir, "opencode.jsonc") }], problems: [] } })
  })

  it("a nearer config file wins, and .jsonc wins over .json in the same folder", async () => {
    const entry = (stateDir: string) => JSON.stringify({ plugin: [["opencode-nso", { stateDir }]] })
    const dir = files(tempDir(), { ".git/": "", "opencode.json": entry("from-root"), "app/opencode.json": entry("from-json"), "app/opencode.jsonc": entry("from-jsonc") })
    await journalAt(join(dir, "app/from-jsonc"))
    expect((await run(["tasks", "--dir", join(dir, "app")])).code).toBe(0)
  })

  it("a config file that cannot be parsed is named", async () => {
    const dir = files(tempDir(), { ".git/": "", "opencode.json": "{ broken" })
    const r = await run(["status", "--dir", dir])
    expect(r.code).toBe(1)
    expect(r.err).toContain(`could not read: ${join(dir, "opencode.json")} is not valid JSON(C)`)
  })
})

describe("nso recognises NSO's plugin entry by what it is", () => {
  it("a path whose package is opencode-nso, the npm name, and a re-exporting plugin file; not a look-alike path", async () => {
    const root = tempDir()
    // A copy of NSO under a folder name that says nothing about NSO.
    files(root, { "vendor/team-tools/package.json": JSON.stringify({ name: "opencode-nso" }), "vendor/team-tools/dist/plugin/index.js": "export {}" })
    // A different package whose path says "nso".
    files(root, { "vendor/nso-lookalike/package.json": JSON.stringify({ name: "nso-lookalike" }), "vendor/nso-lookalike/index.js": "export {}" })
    const dir = files(join(root, "project"), {
      ".git/": "",
      "opencode.json": JSON.stringify({
        plugin: [
          ["../vendor/nso-lookalike/index.js", { stateDir: "wrong" }],
          ["../vendor/team-tools/dist/plugin/index.js", { stateDir: "right" }],
          "opencode-nso@0.1.0",
          "opencode-nsofake",
          join(REPO, "plugin/index.ts"),
        ],
      }),
      ".opencode/plugin/team.js": 'export { NsoPlugin } from "opencode-nso"\n',
      ".opencode/plugin/other.ts": 'import { tool } from "@opencode-ai/plugin"\nexport const X = async () => ({})\n',
    })
    await journalAt(join(dir, "right"))
    const r = await run(["status", "--dir", dir, "--json"])
    expect(r.code).toBe(0)
    const specs = (JSON.parse(r.out) as { plugin: { entries: { spec: string }[] } }).plugin.entries.map((e) => e.spec)
    expect(specs).toEqual(["../vendor/team-tools/dist/plugin/index.js", "opencode-nso@0.1.0", join(REPO, "plugin/index.ts"), join(dir, ".opencode/plugin/team.js")])
    const human = await run(["status", "--dir", dir])
    expect(human.out).toContain("listed 4 times, so OpenCode loads it more than once")
  })
})

describe("JSONC", () => {
  it("strips comments and trailing commas outside strings only", () => {
    const text = '\ufeff{"a": "http://x//y", "b": "/* kept */", "c": "quote \\" // still a string", // gone\n "d": [1, 2, /* gone */ ], /* gone */ }'
    expect(parseJsonc(text)).toEqual({ a: "http://x//y", b: "/* kept */", c: 'quote " // still a string', d: [1, 2] })
    expect(stripJsonc('{"a": 1,\n/* x\ny */}').split("\n")).toHaveLength(3)
    expect(() => parseJsonc('{"a": 1 /* open')).toThrow(/not closed/)
  })
})

describe("is a server running?", () => {
  it.runIf(process.platform === "linux")("a process holding the journal open is seen; none after it ends", async () => {
    const dir = files(tempDir(), { ".git/": "", "opencode.json": "{}" })
    await journalAt(join(dir, ".opencode/nso"))
    const journal = join(dir, ".opencode/nso/journal.jsonl")
    expect(serverFor(journal).running).toBe(false)
    const child = spawn(process.execPath, ["-e", `require("fs").openSync(${JSON.stringify(journal)}, "a"); console.log("open"); setInterval(() => {}, 1000)`], { stdio: ["ignore", "pipe", "ignore"] })
    onTestFinished(() => void child.kill("SIGKILL"))
    await new Promise((r) => child.stdout!.once("data", r))
    expect(serverFor(journal)).toMatchObject({ running: true, pids: [{ pid: child.pid }] })
    expect((await run(["status", "--dir", dir])).out).toContain(`OpenCode server with NSO: running (pid ${child.pid}`)
    expect((await run(["answer", "q_first", "yes", "--dir", dir])).out).toContain(`the running OpenCode server passes it to builder (pid ${child.pid}`)
    child.kill("SIGKILL")
    await new Promise((r) => child.once("exit", r))
    expect((await run(["status", "--dir", dir])).out).toContain("OpenCode server with NSO: none seen (no process of this user has nso/journal.jsonl open)")
    const late = await run(["answer", "q_second", "no", "--dir", dir])
    expect(late.code).toBe(0)
    expect(late.out).toContain("no OpenCode server with NSO is running for this project (no process of this user has nso/journal.jsonl open), so nothing acts on it until OpenCode runs here again.")
  })
})


describe("nso status and option problems", () => {
  it("lists each ignored setting, and still applies the rest", async () => {
    const dir = files(tempDir(), { ".git/": "", ".opencode/nso/": "", ".opencode/nso.yaml": "buffer:\n  pausMs: 3\n  maxSize: 7\n" })
    const r = await run(["status", "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toContain("Options: 1 setting(s) ignored:")
    expect(r.out).toContain(".opencode/nso.yaml: buffer.pausMs: not an NSO option (check the spelling)")
    const j = await run(["status", "--dir", dir, "--json"])
    expect(JSON.parse(j.out).optionProblems).toEqual([expect.stringContaining("buffer.pausMs")])
  })
})

describe("nso teams, nso agents' teams, nso team run", () => {
  const squad = (extra = "") =>
    `name: squad\ndescription: builds and checks\npattern: coordinator_worker\ncoordinator: orchestrator\nmembers:\n  - agent: builder\n    role: implementer\n    priority: 2\n  - agent: scout\n    role: explorer\n    priority: 1\n${extra}`

  /** A project with teams in the project folder, a teamsPaths folder and the global (XDG) folder. */
  function teamProject(): string {
    const xdg = process.env.XDG_CONFIG_HOME!
    files(xdg, { "opencode/nso/teams/squad.yaml": "name: squad\nuse_case: delivery\n" })
    return files(tempDir(), {
      ".git/": "",
      ".opencode/nso.yaml": "teamsPaths: [kit]\n",
      "kit/squad.yml": "name: squad\ndescription: from the kit\n",
      ".opencode/nso/teams/squad.yaml": squad(),
      ".opencode/nso/teams/bad.yaml": "name: bad\ndescription: d\npattern: parallel\nmembers:\n  - agent: wizard\n",
    })
  }

  it("nso teams lists each team with pattern, coordinator, members, use case and where it was defined; problems go to stderr", async () => {
    const dir = teamProject()
    const xdg = process.env.XDG_CONFIG_HOME!
    const r = await run(["teams", "--dir", dir, "--json"])
    expect(r.code).toBe(0)
    const out = JSON.parse(r.out) as { teams: { name: string }[]; problems: string[] }
    expect(out.teams.find((t) => t.name === "squad")).toEqual({
      name: "squad",
      description: "builds and checks",
      pattern: "coordinator_worker",
      coordinator: "orchestrator",
      useCase: "delivery",
      // In the order they run: by priority.
      members: [
        { agent: "scout", role: "explorer" },
        { agent: "builder", role: "implementer" },
      ],
      definedIn: [`(shared) ${join(xdg, "opencode/nso/teams/squad.yaml")}`, ".opencode/nso/teams/squad.yaml"],
    })
    expect(out.teams.find((t) => t.name === "bad")).toBeUndefined()
    expect(out.problems.find((p) => p.includes('no agent profile "wizard"'))).toMatch(/bad\.yaml: members\.0\.agent: no agent profile "wizard"; known profiles: .*builder.*scout/)

    const human = await run(["teams", "--dir", dir])
    expect(human.code).toBe(0)
    expect(human.out).toMatch(/squad\s+coordinator_worker\s+coordinator orchestrator · use case delivery/)
    expect(human.out).toContain("members: scout (explorer), builder (implementer)")
    expect(human.err).toContain('problem: ')
    expect(human.err).toContain('no agent profile "wizard"')
    expect(human.out).not.toContain("wizard")
  })

  it("a teamsPaths folder ranks between the global folder and the project's", async () => {
    const dir = teamProject()
    // Without the project's definition of squad, the kit's description is in force.
    const { rmSync } = await import("node:fs")
    rmSync(join(dir, ".opencode/nso/teams/squad.yaml"))
    writeFileSync(join(dir, ".opencode/nso/teams/squad.yaml"), squad().replace("description: builds and checks\n", ""))
    const r = await run(["teams", "--dir", dir, "--json"])
    const t = (JSON.parse(r.out) as { teams: { name: string; description: string; definedIn: string[] }[] }).teams.find((x) => x.name === "squad")!
    expect(t.description).toBe("from the kit")
    expect(t.definedIn).toEqual([`(shared) ${join(process.env.XDG_CONFIG_HOME!, "opencode/nso/teams/squad.yaml")}`, "(shared) kit/squad.yml", ".opencode/nso/teams/squad.yaml"])
  })

  it("nso teams works without any team folder, and exits 1 when every team has a problem", async () => {
    const dir = files(tempDir(), { ".git/": "", "opencode.json": "{}" })
    const none = await run(["teams", "--dir", dir, "--json"])
    expect(none.code).toBe(0)
    const bad = files(tempDir(), { ".git/": "", ".opencode/nso.yaml": "teams:\n  only: { description: d, pattern: parallel, members: [{ agent: wizard }] }\n" })
    const r = await run(["teams", "--dir", bad, "--json"])
    const out = JSON.parse(r.out) as { teams: { name: string }[]; problems: string[] }
    if (out.teams.length === 0) {
      // No shipped teams either: nothing this command was for loaded.
      expect(r.code).toBe(1)
    } else expect(r.code).toBe(0)
    expect(out.problems).toEqual(expect.arrayContaining([expect.stringMatching(/^opencode\.json teams\.only: members\.0\.agent: no agent profile "wizard"/)]))
  })

  it("nso agents says which teams each agent is in", async () => {
    const dir = teamProject()
    const r = await run(["agents", "--dir", dir, "--json"])
    expect(r.code).toBe(0)
    const agents = (JSON.parse(r.out) as { agents: { name: string; teams: string[] }[] }).agents
    expect(agents.find((a) => a.name === "builder")!.teams).toContain("squad")
    expect(agents.find((a) => a.name === "orchestrator")!.teams).toContain("squad")
    expect(agents.find((a) => a.name === "oracle")!.teams).not.toContain("squad")
    const human = await run(["agents", "--dir", dir])
    expect(human.out).toMatch(/builder[^\n]*\n[^\n]*\n\s+in teams [^\n]*squad/)
  })

  it("nso team run: an unknown team is a usage error listing the teams; no running server is a clear error", async () => {
    const dir = teamProject()
    await journalAt(join(dir, ".opencode/nso"))
    const unknown = await run(["team", "run", "nope", "do it", "--dir", dir])
    expect(unknown.code).toBe(2)
    expect(unknown.err).toMatch(/no team "nope"; teams: .*squad/)
    const bad = await run(["team", "run", "bad", "do it", "--dir", dir])
    expect(bad.code).toBe(2)
    expect(bad.err).toContain('It was left out: ')
    expect((await run(["team", "go", "squad", "x", "--dir", dir])).code).toBe(2)
    expect((await run(["team", "run", "squad", "--dir", dir])).code).toBe(2)
    const before = readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")
    const r = await run(["team", "run", "squad", "ship it", "--dir", dir])
    if (process.platform === "linux") {
      expect(r.code).toBe(1)
      expect(r.err).toContain("no OpenCode server with NSO is running for this project")
      // Nothing was asked of anyone.
      expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")).toBe(before)
    }
  })

  it.runIf(process.platform === "linux")("nso team run asks the running server and prints the run it started; it waits a bounded time", async () => {
    const dir = teamProject()
    const stateDir = join(dir, ".opencode/nso")
    await journalAt(stateDir)
    const child = spawn(process.execPath, ["-e", `require("fs").openSync(${JSON.stringify(join(stateDir, "journal.jsonl"))}, "a"); console.log("open"); setInterval(() => {}, 1000)`], { stdio: ["ignore", "pipe", "ignore"] })
    onTestFinished(() => void child.kill("SIGKILL"))
    await new Promise((r) => child.stdout!.once("data", r))

    // This test plays the server: it answers a request with the run it started.
    const { journal: server } = await Journal.open(fakeDeps(), nsoReducer, { dir: stateDir, fsync: false })
    onTestFinished(() => server.close())
    const requests: unknown[] = []
    let stop = false
    const serve = (async () => {
      while (!stop) {
        for (const rec of await server.readForeign())
          if (rec.e.type === "workflow.requested") {
            requests.push(rec.e)
            const now = Date.now()
            // An unrelated run first: the CLI waits for the one with its team and goal.
            for (const goal of ["something else", rec.e.goal])
              await server.append({
                type: "workflow.created",
                workflow: { id: goal === rec.e.goal ? `wf_started${requests.length}` : `wf_other${requests.length}`, team: rec.e.team, pattern: "coordinator_worker", goal, title: goal, parentSessionId: rec.e.sessionId ?? "ses_oracle", depth: 1, phase: "delegation", startedBy: "user", handoffs: [], createdAt: now, updatedAt: now },
              })
          }
        await new Promise((r) => setTimeout(r, 20))
      }
    })()
    onTestFinished(async () => {
      stop = true
      await serve
    })

    const r = await run(["team", "run", "squad", "ship", "it", "--session", "ses_9", "--dir", dir])
    expect(r.err).toBe("")
    expect(r.code).toBe(0)
    expect(r.out).toBe("Started team run wf_started1 (squad, coordinator_worker) — follow it with nso tasks")
    expect(requests).toEqual([{ type: "workflow.requested", team: "squad", goal: "ship it", sessionId: "ses_9", by: "user (nso CLI)" }])

    const j = await run(["team", "run", "squad", "again", "--dir", dir, "--json"])
    expect(JSON.parse(j.out)).toEqual({ workflow: "wf_started2", team: "squad", pattern: "coordinator_worker", goal: "again", sessionId: "ses_oracle" })

    // A server that never answers: the wait ends, and says so.
    stop = true
    await serve
    const saved = { ...limits }
    limits.teamRunWaitMs = 300
    onTestFinished(() => void Object.assign(limits, saved))
    const late = await run(["team", "run", "squad", "ship it", "--dir", dir])
    expect(late.code).toBe(1)
    expect(late.err).toContain("the request to run team squad is in the journal, but no team run started within 0.3 s")
  })
})

describe("nso tell, nso messages, nso board", () => {
  const T0 = 1_700_000_000_000
  const task = (id: string, agent: string, status: "queued" | "running" | "waiting_for_answer" | "completed" | "failed", over: Record<string, unknown> = {}) => ({
    id,
    agent,
    title: `${agent} work`,
    prompt: "p",
    priority: "medium" as const,
    status,
    parentSessionId: "ses_root",
    ...(status === "queued" ? {} : { sessionId: `ses_${id.slice(4)}` }),
    depth: 0,
    scope: [],
    dependsOn: [],
    createdAt: T0,
    updatedAt: T0,
    lastActivityAt: T0,
    ...over,
  })
  const post = (id: string, workflow: string, from: string, kind: "finding" | "variable" | "decision" | "broadcast", text: string, key?: string, time = T0) => ({
    type: "board.posted" as const,
    post: { id, time, workflow, from, kind, text, ...(key ? { key } : {}) },
  })

  /** A project whose journal holds tasks of one Oracle session, a team run, and board posts. */
  async function messagingProject(): Promise<string> {
    const dir = files(tempDir(), { ".git/": "", "opencode.json": "{}" })
    const { journal } = await Journal.open(fakeDeps(), nsoReducer, { dir: join(dir, ".opencode/nso"), fsync: false })
    const run = { id: "wf_run001", team: "squad", pattern: "parallel" as const, goal: "ship it", title: "ship it", parentSessionId: "ses_root", depth: 1, phase: "parallel_execution" as const, startedBy: "oracle", handoffs: [], createdAt: T0, updatedAt: T0 }
    const events: JournalEvent[] = [
      { type: "task.created", task: task("tsk_live01", "builder", "running") },
      { type: "task.created", task: task("tsk_done01", "scout", "completed", { result: "found it" }) },
      { type: "task.created", task: task("tsk_wait01", "builder", "queued") },
      { type: "workflow.created", workflow: run },
      { type: "workflow.created", workflow: { ...run, id: "wf_over01", goal: "old", title: "old", phase: "completed" } },
      { type: "task.created", task: task("tsk_mem001", "w1", "running", { workflow: { id: "wf_run001", step: "member:0", report: "workflow" } }) },
      post("msg_post01", "wf_run001", "w1", "variable", "db = sqlite", "db"),
      post("msg_post02", "wf_run001", "w2", "finding", "the table has 3 indexes", undefined, T0 + 1),
      post("msg_post03", "wf_run001", "w1", "variable", "db = postgres", "db", T0 + 2),
      post("msg_post04", "ses_root", "builder", "decision", "decision: ship on Friday", undefined, T0 + 3),
    ]
    for (const e of events) await journal.append(e)
    await journal.close()
    return dir
  }

  it("nso tell: usage errors, unknown ids, finished and not yet started tasks, and no running server", async () => {
    const dir = await messagingProject()
    const journalFile = join(dir, ".opencode/nso/journal.jsonl")
    const before = readFileSync(journalFile, "utf8")
    expect((await run(["tell", "--dir", dir])).code).toBe(2)
    expect((await run(["tell", "tsk_live01", "--dir", dir])).code).toBe(2)
    const unknown = await run(["tell", "tsk_nope01", "hello", "--dir", dir])
    expect(unknown.code).toBe(2)
    expect(unknown.err).toContain('no task "tsk_nope01" (see nso tasks)')
    const done = await run(["tell", "tsk_done01", "redo it", "--dir", dir])
    expect(done.code).toBe(2)
    expect(done.err).toContain('task tsk_done01 (scout: "scout work") already ended completed; it cannot receive messages')
    expect(done.err).toContain("delegate a follow-up task")
    const queued = await run(["tell", "tsk_wait01", "hi", "--dir", dir])
    expect(queued.code).toBe(2)
    expect(queued.err).toContain("has not started yet")
    const over = await run(["tell", "wf_over01", "hi", "--dir", dir, "--json"])
    expect(over.code).toBe(2)
    expect(JSON.parse(over.out).error).toContain("team run wf_over01 (squad) already ended (completed)")
    expect((await run(["tell", "wf_nope01", "hi", "--dir", dir])).err).toContain('no team run "wf_nope01"')
    if (process.platform === "linux") {
      const none = await run(["tell", "tsk_live01", "use", "postgres", "--dir", dir])
      expect(none.code).toBe(1)
      expect(none.err).toContain("no OpenCode server with NSO is running for this project")
    }
    // Nothing was written by any of these.
    expect(readFileSync(journalFile, "utf8")).toBe(before)
  })

  it("nso cancel --all: usage errors, nothing to stop, and the request it records (of all sessions or one tree)", async () => {
    const dir = await messagingProject()
    const journalFile = join(dir, ".opencode/nso/journal.jsonl")
    const before = readFileSync(journalFile, "utf8")
    const both = await run(["cancel", "tsk_live01", "--all", "--dir", dir])
    expect(both.code).toBe(2)
    expect(both.err).toContain('--all stops everything; leave out "tsk_live01"')
    expect((await run(["cancel", "tsk_live01", "--session", "ses_root", "--dir", dir])).err).toContain("--session goes with --all")
    const none = await run(["cancel", "--all", "--session", "ses_elsewhere", "--dir", dir])
    expect(none.code).toBe(2)
    expect(none.err).toContain("nothing to stop: no task of session ses_elsewhere is running")
    expect(readFileSync(journalFile, "utf8")).toBe(before)
    const r = await run(["cancel", "--all", "--session", "ses_root", "--dir", dir, "--json"])
    expect(r.code).toBe(0)
    expect(JSON.parse(r.out)).toMatchObject({ all: true, sessionId: "ses_root", tasks: ["tsk_live01", "tsk_wait01", "tsk_mem001"], requested: true })
    expect((await run(["cancel", "--all", "--dir", dir])).out).toMatch(/Stopping all background work \(3 task\(s\) running\) recorded in the journal/)
    const asked = readFileSync(journalFile, "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { e: JournalEvent }).e)
      .filter((e) => e.type === "task.cancel_all_requested")
    expect(asked).toEqual([
      { type: "task.cancel_all_requested", sessionId: "ses_root", by: "user (cli)" },
      { type: "task.cancel_all_requested", by: "user (cli)" },
    ])
  })

  it.runIf(process.platform === "linux")("nso tell appends message.told for a running task or team run and says what happens next", async () => {
    const dir = await messagingProject()
    const stateDir = join(dir, ".opencode/nso")
    const child = spawn(process.execPath, ["-e", `require("fs").openSync(${JSON.stringify(join(stateDir, "journal.jsonl"))}, "a"); console.log("open"); setInterval(() => {}, 1000)`], { stdio: ["ignore", "pipe", "ignore"] })
    onTestFinished(() => void child.kill("SIGKILL"))
    await new Promise((r) => child.stdout!.once("data", r))

    const r = await run(["tell", "tsk_live01", "use", "Postgres,", "not", "SQLite", "--dir", dir])
    expect(r.err).toBe("")
    expect(r.code).toBe(0)
    expect(r.out).toContain(`Message for builder (tsk_live01) recorded in the journal; the running OpenCode server delivers it (pid ${child.pid}`)
    expect(r.out).toContain("The agent reads it at its next turn, marked source: user")
    const j = await run(["tell", "wf_run001", "stop after the schema", "--dir", dir, "--json"])
    expect(j.code).toBe(0)
    expect(JSON.parse(j.out)).toEqual({ to: "wf_run001", text: "stop after the schema", recorded: true, serverRunning: true })

    const told = readFileSync(join(stateDir, "journal.jsonl"), "utf8")
      .split("\n")
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as { e: JournalEvent }).e)
      .filter((e) => e.type === "message.told")
    expect(told).toEqual([
      { type: "message.told", to: "tsk_live01", text: "use Postgres, not SQLite", by: "user (nso CLI)" },
      { type: "message.told", to: "wf_run001", text: "stop after the schema", by: "user (nso CLI)" },
    ])
  })

  it("nso messages: only message lines, filtered by workflow; private text hidden unless --all", async () => {
    const dir = files(tempDir(), { ".git/": "", ".opencode/nso/": "" })
    const line = (o: Record<string, unknown>) => JSON.stringify({ type: "message", time: T0, hops: 0, source: "agent", outcome: "queued", ...o })
    writeFileSync(
      join(dir, ".opencode/nso/messages.jsonl"),
      [
        // An older tag line: not an agent message.
        JSON.stringify({ time: T0, session: "ses_root", source: "user", tag: "user" }),
        line({ workflow: "wf_run001", id: "msg_a00001", from: "w1", fromTask: "tsk_mem001", to: "w2 (tsk_mem002)", kind: "request", text: "which index?" }),
        line({ workflow: "wf_run001", id: "msg_a00002", from: "w2", fromTask: "tsk_mem002", to: "w1 (tsk_mem001)", kind: "reply", hops: 1, replyTo: "msg_a00001", outcome: "handed to the waiting request", text: "the second" }),
        line({ workflow: "wf_run001", id: "msg_a00003", from: "w2", to: "w1 (tsk_mem001)", kind: "finding", private: true, text: "the password is hunter2" }),
        "{ torn",
        line({ workflow: "ses_root", id: "msg_a00004", from: "user", source: "user", to: "builder (tsk_live01)", kind: "finding", text: "use Postgres" }),
      ].join("\n") + "\n",
    )
    const all = JSON.parse((await run(["messages", "--dir", dir, "--json"])).out) as Record<string, unknown>[]
    expect(all.map((l) => l.id)).toEqual(["msg_a00001", "msg_a00002", "msg_a00003", "msg_a00004"])
    expect(all[2]).toMatchObject({ private: true, hidden: true, text: null })
    const run1 = JSON.parse((await run(["messages", "--workflow", "wf_run001", "--all", "--dir", dir, "--json"])).out) as Record<string, unknown>[]
    expect(run1.map((l) => l.id)).toEqual(["msg_a00001", "msg_a00002", "msg_a00003"])
    expect(run1[2]!.text).toBe("the password is hunter2")

    const human = await run(["messages", "--dir", dir])
    expect(human.code).toBe(0)
    expect(human.out).toContain(`${new Date(T0).toISOString()}  wf_run001  w1 (tsk_mem001) → w2 (tsk_mem002)  request  hops 0  msg_a00001  queued\n  which index?`)
    expect(human.out).toContain("w2 (tsk_mem002) → w1 (tsk_mem001)  reply  hops 1  msg_a00002  reply to msg_a00001  handed to the waiting request\n  the second")
    expect(human.out).toContain("(private: text hidden; --all shows it)")
    expect(human.out).not.toContain("hunter2")
    expect(human.out).toContain("user [source: user] → builder (tsk_live01)")
    expect((await run(["messages", "--all", "--dir", dir])).out).toContain("(private) the password is hunter2")
    expect((await run(["messages", "--limit", "1", "--dir", dir, "--json"])).out).toContain("msg_a00004")
    expect((await run(["messages", "--limit", "x", "--dir", dir])).code).toBe(2)
    expect((await run(["messages", "--workflow", "wf_other1", "--dir", dir])).out).toBe("No agent messages in workflow wf_other1.")
    const empty = files(tempDir(), { ".git/": "", ".opencode/nso/": "" })
    expect((await run(["messages", "--dir", empty])).out).toBe("No agent messages yet.")
  })

  it("nso board: every workflow's board, variables once in their latest value; --workflow picks one", async () => {
    const dir = await messagingProject()
    const j = JSON.parse((await run(["board", "--dir", dir, "--json"])).out) as { workflow: string; team?: string; posts: { id: string; text: string }[] }[]
    expect(j.map((b) => [b.workflow, b.team, b.posts.map((p) => p.text)])).toEqual([
      ["wf_run001", "squad", ["the table has 3 indexes", "db = postgres"]],
      ["ses_root", undefined, ["decision: ship on Friday"]],
    ])
    const human = await run(["board", "--dir", dir])
    expect(human.code).toBe(0)
    expect(human.out).toContain("wf_run001 · team squad (parallel_execution): ship it — 2 post(s)")
    expect(human.out).toContain("variable db · w1: db = postgres")
    expect(human.out).not.toContain("sqlite")
    expect(human.out).toContain("ses_root · tasks of that Oracle session — 1 post(s)")
    const one = await run(["board", "--workflow", "ses_root", "--dir", dir])
    expect(one.out).not.toContain("wf_run001")
    expect(one.out).toContain("decision: ship on Friday")
    // A run with no posts yet is an empty board, not an error; an unknown id is.
    expect((await run(["board", "--workflow", "wf_over01", "--dir", dir])).out).toContain("wf_over01 · team squad (completed): old — empty")
    const bad = await run(["board", "--workflow", "wf_nope01", "--dir", dir])
    expect(bad.code).toBe(2)
    expect(bad.err).toContain('no workflow "wf_nope01"; boards with posts: wf_run001, ses_root')
    const none = files(tempDir(), { ".git/": "", ".opencode/nso/": "" })
    expect((await run(["board", "--dir", none])).out).toBe("No board posts yet.")
  })
})

describe("nso stats, nso best-agent", () => {
  const DAY = 86_400_000
  const iso = (ms: number) => new Date(ms).toISOString()
  let n = 0
  /** An invocation line ending `daysAgo` days before now (the CLI's now is the real clock). */
  function invocation(agent: string, daysAgo: number, o: { ok?: boolean; keywords?: string[]; workflow?: string; team?: string; at?: number; active?: number } = {}) {
    const start = o.at ?? Date.now() - daysAgo * DAY - 3_600_000
    const active = o.active ?? 600
    const id = `tsk_cli${(n++).toString().padStart(6, "0")}`
    return {
      timestamp: iso(start + active * 1000),
      event: "agent_invocation",
      task_id: id,
      agent,
      task_digest: "0123456789abcdef",
      keywords: o.keywords ?? ["api", "endpoint"],
      tags: [],
      workflow_id: o.workflow ?? id,
      ...(o.team ? { team: o.team } : {}),
      started_at: iso(start),
      ended_at: iso(start + active * 1000),
      duration_seconds: active,
      active_seconds: active,
      waiting_seconds: { queue: 0, answer: 0 },
      outcome: o.ok === false ? "failure" : "success",
      success: o.ok !== false,
      tokens: { input: 1000, output: 100, reasoning: 0, cache_read: 0, cache_write: 0 },
      cost: 0.01,
      turns: 2,
      tool_calls: 1,
      retries: 0,
      delivery_turns: o.team ? 1 : 0,
      coordination_tokens: o.team ? 200 : 0,
    }
  }

  /** A project whose telemetry holds: an "api-smith" (own profile) declining, a parallel team run, and a torn last line. */
  function telemetryProject(): string {
    const inv: ReturnType<typeof invocation>[] = []
    const wf: { timestamp: string; [k: string]: unknown }[] = []
    for (let d = 20; d >= 8; d -= 2) inv.push(invocation("api-smith", d))
    for (let d = 6; d >= 1; d -= 2) inv.push(invocation("api-smith", d, { ok: d === 6 }))
    // Each plain task is a workflow of one agent.
    for (const i of [...inv]) {
      wf.push({ timestamp: i.started_at, event: "workflow_start", workflow_id: i.workflow_id, project_name: "p", agent_plan: [i.agent], nso: { kind: "task" } })
      wf.push({ timestamp: i.ended_at, event: "workflow_complete", workflow_id: i.workflow_id, duration_seconds: i.duration_seconds, success: i.success, agents_executed: [i.agent], nso: { kind: "task" } })
    }
    // A parallel team run: two members at once for 1000 s of its 1200 s.
    const t0 = Date.now() - 2 * DAY
    const team = { kind: "team", team: "review", pattern: "parallel" }
    wf.push({ timestamp: iso(t0), event: "workflow_start", workflow_id: "wf_cli1", project_name: "p", agent_plan: ["builder", "scout"], nso: team })
    inv.push(invocation("builder", 0, { at: t0, active: 1000, workflow: "wf_cli1", team: "review", keywords: ["review"] }))
    inv.push(invocation("scout", 0, { at: t0, active: 1100, workflow: "wf_cli1", team: "review", keywords: ["review"] }))
    wf.push({ timestamp: iso(t0 + 1_200_000), event: "workflow_complete", workflow_id: "wf_cli1", duration_seconds: 1200, success: true, agents_executed: ["builder", "scout"], nso: team })
    const sort = <T extends { timestamp: unknown }>(xs: T[]) => xs.sort((a, b) => Date.parse(String(a.timestamp)) - Date.parse(String(b.timestamp)))
    const jsonl = (xs: unknown[]) => xs.map((x) => JSON.stringify(x) + "\n").join("")
    return files(tempDir(), {
      ".git/": "",
      ".opencode/nso/agents/api-smith.yaml": 'name: api-smith\ndescription: Builds HTTP endpoints\nspecialization: "REST APIs"\ntags: [backend]\nprompt: "You build APIs."\n',
      ".opencode/nso/telemetry/workflow_events.jsonl": jsonl(sort(wf)),
      ".opencode/nso/telemetry/agent_invocations.jsonl": jsonl(sort(inv)) + '{"timestamp":"2025-',
    })
  }

  it("nso stats workflows, overhead (both formulas and the bands), teams and agents; --json gives the objects; skipped lines are noted on stderr", async () => {
    const dir = telemetryProject()
    const w = await run(["stats", "workflows", "--dir", dir])
    expect(w.code).toBe(0)
    expect(w.out).toContain("Workflows: 11 completed · success 82%")
    expect(w.out).toContain("builder → scout")
    const wj = JSON.parse((await run(["stats", "workflows", "--dir", dir, "--json"])).out)
    expect(wj).toMatchObject({ total: 11, succeeded: 9, byKind: { team: { total: 1 } }, read: { workflows: { records: 22 } } })

    const o = await run(["stats", "overhead", "--dir", dir, "--limit", "3"])
    expect(o.code).toBe(0)
    expect(o.out).toMatch(/time no agent worked .*: \d+\.\d% → Stay Phase 1-2/)
    expect(o.out).toContain("original formula (wall − Σ agent time) / wall")
    expect(o.out).toContain("below zero in 1 workflow(s)")
    expect(o.out).toContain("Bands: < 15% efficient → Stay Phase 1-2 · 15–30% moderate → Monitor overhead · > 30% high → Consider Phase 3")
    expect(o.out.split("\n").filter((l) => / {2}tsk_|wf_cli1/.test(l))).toHaveLength(3)
    expect(o.err).toContain("1 torn line(s) in the invocations log")
    const oj = JSON.parse((await run(["stats", "overhead", "--dir", dir, "--json"])).out)
    const run1 = oj.recent.find((r: { workflow_id: string }) => r.workflow_id === "wf_cli1")
    expect(run1).toMatchObject({ wallSeconds: 1200, coveredSeconds: 1100, parallelSeconds: 1000, agentSeconds: 2100 })
    expect(run1.originalOverheadPct).toBeLessThan(0)
    expect(oj.read.invocations).toMatchObject({ torn: 1, invalid: 0 })

    const t = await run(["stats", "teams", "--dir", dir])
    expect(t.out).toMatch(/review\s+parallel\s+1\s+100%/)
    expect(JSON.parse((await run(["stats", "teams", "--dir", dir, "--json"])).out).teams[0]).toMatchObject({ team: "review", runs: 1, utilizationPct: 83.33 })
    const a = await run(["stats", "agents", "--dir", dir])
    expect(a.out).toMatch(/api-smith\s+10\s+80%/)
  })

  it("nso stats trends <agent> [--days]: the last 7 days against the days before; usage errors exit 2", async () => {
    const dir = telemetryProject()
    const r = await run(["stats", "trends", "api-smith", "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toContain("api-smith over the last 30 days: declining (-66.7 points)")
    // 10 days back: one task before the last 7 days.
    expect(JSON.parse((await run(["stats", "trends", "api-smith", "--days", "10", "--dir", dir, "--json"])).out)).toMatchObject({
      trend: "not enough data",
      days: 10,
      recent: { tasks: 3, succeeded: 1 },
      prior: { tasks: 1 },
    })
    expect((await run(["stats", "trends", "--dir", dir])).code).toBe(2)
    const short = await run(["stats", "trends", "api-smith", "--days", "7", "--dir", dir])
    expect(short.code).toBe(2)
    expect(short.err).toContain("--days must be more than 7")
    expect((await run(["stats", "--dir", dir])).code).toBe(2)
    expect((await run(["stats", "everything", "--dir", dir])).err).toContain("nso stats workflows|overhead|teams|agents|trends")
  })

  it("nso best-agent: the project's profiles and history, the evidence, --all, --min-confidence, and no suitable agent", async () => {
    const dir = telemetryProject()
    const r = await run(["best-agent", "--task", "REST API endpoint", "--domain", "backend", "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toMatch(/Best agent for "REST API endpoint" \(domain backend\): api-smith — confidence \d+%/)
    expect(r.out).toContain("why: past tasks about api (10 task(s), 8 ok), endpoint (10 task(s), 8 ok); profile says rest, api, endpoint, backend")
    expect(r.out).toContain("trend declining")
    const j = JSON.parse((await run(["best-agent", "--task", "REST API endpoint", "--all", "--dir", dir, "--json"])).out)
    expect(j.best.agent).toBe("api-smith")
    expect(j.candidates.length).toBeGreaterThan(1)
    expect(j.candidates.every((c: { agent: string }) => c.agent !== "oracle")).toBe(true)
    const high = await run(["best-agent", "--task", "REST API endpoint", "--min-confidence", "0.99", "--dir", dir])
    expect(high.out).toContain("no suitable agent — consider creating a specialist")
    expect(high.out).toContain("nearest below 99% confidence: api-smith")
    const none = await run(["best-agent", "--task", "Translate the marketing site into Japanese", "--dir", dir, "--json"])
    expect(JSON.parse(none.out)).toMatchObject({ best: null, message: "no suitable agent — consider creating a specialist" })
    expect((await run(["best-agent", "--dir", dir])).code).toBe(2)
    expect((await run(["best-agent", "--task", "x", "--min-confidence", "2", "--dir", dir])).code).toBe(2)
  })

  it("a project without telemetry yet: empty answers, not errors; help lists the commands", async () => {
    const dir = files(tempDir(), { ".git/": "", ".opencode/nso/": "" })
    expect((await run(["stats", "workflows", "--dir", dir])).out).toContain("No completed workflows yet")
    expect((await run(["stats", "overhead", "--dir", dir])).out).toContain("No completed workflow with invocations to measure yet")
    expect((await run(["stats", "teams", "--dir", dir])).out).toBe("No team runs recorded yet.")
    expect((await run(["stats", "trends", "builder", "--dir", dir])).out).toContain("builder over the last 30 days: not enough data")
    const b = await run(["best-agent", "--task", "implementation of the parser", "--dir", dir])
    expect(b.code).toBe(0)
    expect(b.out).toContain("no task history yet")
    const help = (await run(["--help"])).out
    expect(help).toContain("stats")
    expect(help).toContain("best-agent")
    expect((await run(["best-agent", "--help"])).out).toContain("--min-confidence")
  })
})
