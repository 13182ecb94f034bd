import { spawn } from "node:child_process"
import { mkdirSync, readFileSync, writeFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { beforeEach, describe, expect, it, onTestFinished, vi } from "vitest"
import { main } from "../../scripts/nso.js"
import { parseJsonc, serverFor, stripJsonc } from "../../scripts/project.js"
import { Journal } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import { env, fakeDeps, tempDir } from "../helpers/fake-deps.js"

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..")

async function run(args: string[]) {
  const lines: string[] = []
  const errors: string[] = []
  const code = await main(
    args,
    (s) => lines.push(s),
    (s) => errors.push(s),
  )
  return { code, out: lines.join("\n"), err: errors.join("\n") }
}

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

// No test reads the real ~/.config/opencode or $OPENCODE_CONFIG.
beforeEach(() => {
  vi.stubEnv("XDG_CONFIG_HOME", tempDir("nso-xdg-"))
  vi.stubEnv("OPENCODE_CONFIG", "")
  vi.stubEnv("OPENCODE_CONFIG_DIR", "")
  return () => vi.unstubAllEnvs()
})

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
