import { existsSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import type { Processes } from "../../plugin/deps.js"
import type { Job } from "../../plugin/jobs/job.js"
import { POLL_MS } from "../../plugin/jobs/runner.js"
import { Options } from "../../plugin/options.js"
import { Runtime } from "../../plugin/runtime.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

/**
 * Processes that exist only in the test: a job "runs" until the test writes its exit record (as
 * the wrapper would) or kills its group. `stubborn` jobs ignore SIGTERM.
 */
class FakeProcesses implements Processes {
  next = 4000
  alive = new Set<number>()
  stubborn = new Set<number>()
  spawned: { file: string; args: readonly string[]; cwd: string; pid: number }[] = []
  signals: { pgid: number; signal: string | 0 }[] = []
  watchers = new Map<string, () => void>()
  /** What the wrapper does on SIGTERM: write its record and exit. */
  onTerm?: (pgid: number) => void
  async spawnDetached(file: string, args: readonly string[], opts: { cwd: string }) {
    const pid = this.next++
    this.spawned.push({ file, args, cwd: opts.cwd, pid })
    this.alive.add(pid)
    return pid
  }
  signalGroup(pgid: number, signal: "SIGTERM" | "SIGKILL" | 0) {
    if (signal !== 0) this.signals.push({ pgid, signal })
    if (!this.alive.has(pgid)) return false
    if (signal === "SIGKILL") this.alive.delete(pgid)
    if (signal === "SIGTERM" && !this.stubborn.has(pgid)) this.onTerm?.(pgid)
    return true
  }
  watch(dir: string, onChange: () => void) {
    this.watchers.set(dir, onChange)
    return () => void this.watchers.delete(dir)
  }
}

const opts = (over: object = {}) => Options.parse({ journal: { fsync: false }, buffer: { pauseMs: 2000 }, jobs: { tailLines: 3, killGraceMs: 1000 }, ...over })

async function setup(dir = tempDir(), proc = new FakeProcesses(), o = opts()) {
  const deps = fakeDeps({ proc })
  const rt = await Runtime.start(deps, dir, o)
  return { rt, deps, dir, proc }
}

/**
 * A job one server started; that server stops, `meanwhile` happens (the wrapper records an end,
 * the process dies), and a second server opens the same folder over the same processes.
 */
async function acrossRestart(command: string, meanwhile: (j: Job, first: Runtime, proc: FakeProcesses) => void = () => {}) {
  const dir = tempDir()
  const proc = new FakeProcesses()
  const first = await setup(dir, proc)
  const j = await first.rt.jobs.start({ command, sessionId: "ses_o", agent: "oracle" })
  await first.rt.dispose()
  meanwhile(j, first.rt, proc)
  const second = await setup(dir, proc)
  return { dir, proc, j, second }
}

/** What the wrapper writes when the command ends. */
function finish(dir: string, rec: { exitCode: number | null; signal?: string; timedOut?: boolean; cancelled?: boolean }, output = "") {
  if (output) writeFileSync(join(dir, "output.log"), output)
  writeFileSync(join(dir, "exit.json"), JSON.stringify({ exitCode: rec.exitCode, signal: rec.signal ?? null, startedAt: 1, endedAt: 1_700_000_003_200, timedOut: rec.timedOut ?? false, cancelled: rec.cancelled ?? false }))
}

/** Job reports for a session, whether still buffered or already injected (the fake host records those). */
function posted(rt: Runtime, sid: string): { kind?: string; text: string; sessionId: string }[] {
  const host = rt.deps.host as unknown as { injections: { sessionId: string; text: string; meta: Record<string, unknown> }[] }
  const injected = host.injections.filter((i) => i.sessionId === sid && i.meta.from === "job").map((i) => ({ kind: i.meta.kind as string, text: i.text, sessionId: sid }))
  return [...injected, ...rt.deliverer.pending(sid).filter((e) => e.from === "job").map((e) => ({ kind: e.kind, text: e.text, sessionId: e.sessionId! }))]
}

/** Lets pending promise chains (real file system calls) run until `cond` holds; bounded. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !cond(); i++) await new Promise((r) => setTimeout(r, 1))
  expect(cond()).toBe(true)
}

describe("jobs: start", () => {
  it("starts the command detached under the wrapper, journals it, returns before it ends", async () => {
    const { rt, dir, proc } = await setup()
    const j = await rt.jobs.start({ command: "npm test", sessionId: "ses_o", agent: "oracle" })
    expect(j).toMatchObject({ status: "running", command: "npm test", title: "npm test", cwd: dir, timeoutMs: 3_600_000, sessionId: "ses_o", pid: 4000, pgid: 4000 })
    expect(proc.spawned[0]!.file).toBe("/bin/sh")
    // sh -c <wrapper> <$0> <folder> <limit ms> <grace ms> <command>
    expect(proc.spawned[0]!.args.slice(2)).toEqual(["nso-job", rt.jobs.dir(j.id), "3600000", "1000", "npm test"])
    expect(existsSync(rt.jobs.dir(j.id))).toBe(true)
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")).toContain('"job.started"')
    expect(rt.jobs.running("ses_o")).toBe(1)
    await rt.dispose()
  })

  it("refuses bad arguments with what was wrong and what to do", async () => {
    const { rt, proc } = await setup(tempDir(), new FakeProcesses(), opts({ jobs: { maxRunning: 1 } }))
    const start = (over: object) => rt.jobs.start({ command: "make", sessionId: "ses_o", agent: "oracle", ...over })
    await expect(start({ command: "   " })).rejects.toThrow(/command is empty/)
    await expect(start({ timeoutMs: -5 })).rejects.toThrow(/timeout_ms must be a whole number of milliseconds from 0 \(no limit\)/)
    await expect(start({ timeoutMs: 1.5 })).rejects.toThrow(/timeout_ms/)
    await expect(start({ cwd: "no/such/folder" })).rejects.toThrow(/cwd "no\/such\/folder" is not a folder/)
    // A read-only profile (bash denied) cannot start a job.
    await expect(start({ agent: "scout" })).rejects.toThrow(/the scout agent may not run it — its role may not run commands/)
    expect(proc.spawned).toHaveLength(0)
    await start({})
    await expect(start({})).rejects.toThrow(/1 jobs already run \(the jobs.maxRunning option allows 1\)/)
    expect(proc.spawned).toHaveLength(1)
    await rt.dispose()
  })

  it("a profile's bash patterns are applied to the command (last match wins)", async () => {
    const o = opts({ agents: { tester: { description: "runs tests", prompt: "x", permission: { bash: { "*": "deny", "npm test*": "allow", "npm test --danger*": "ask" } } } } })
    const { rt } = await setup(tempDir(), new FakeProcesses(), o)
    const start = (command: string) => rt.jobs.start({ command, sessionId: "ses_o", agent: "tester" })
    await expect(start("rm -rf /")).rejects.toThrow(/its bash rules deny this command/)
    await expect(start("npm test --danger now")).rejects.toThrow(/need the user's approval/)
    await expect(start("npm test --watch=false")).resolves.toMatchObject({ status: "running" })
    await rt.dispose()
  })
})

describe("jobs: end", () => {
  it("notices the end from the folder watch and posts exit code, duration, tail and log path once", async () => {
    const { rt, proc } = await setup()
    const j = await rt.jobs.start({ command: "npm test", title: "tests", sessionId: "ses_o", agent: "oracle" })
    await rt.jobs.idle()
    finish(rt.jobs.dir(j.id), { exitCode: 0 }, "one\ntwo\nthree\nfour\n")
    proc.alive.delete(j.pgid)
    proc.watchers.get(rt.jobs.dir(j.id))!()
    proc.watchers.get(rt.jobs.dir(j.id))?.()
    await rt.jobs.idle()
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "succeeded", exitCode: 0, endedAt: 1_700_000_003_200 })
    const msgs = posted(rt, "ses_o")
    expect(msgs).toHaveLength(1)
    expect(msgs[0]).toMatchObject({ kind: "completion", sessionId: "ses_o" })
    expect(msgs[0]!.text).toContain(`Job ${j.id} ("tests") succeeded (exit 0)`)
    expect(msgs[0]!.text).toContain("Last 3 line(s) of output:\ntwo\nthree\nfour")
    expect(msgs[0]!.text).toContain(`Full log: .opencode/nso/jobs/${j.id}/output.log`)
    expect(rt.jobs.running("ses_o")).toBe(0)
    // Start and end are in the session log beside the tool calls.
    await rt.toolLog.flush()
    const log = readFileSync(join(rt.projectDir, ".opencode/nso/log.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l))
    expect(log.map((l) => [l.tool, l.ok])).toEqual([["job.started", true], ["job.ended", true]])
    // And in the session's close summary.
    rt.registry.learn("ses_o", {})
    await rt.closer.close("ses_o")
    expect(readFileSync(join(rt.projectDir, ".opencode/context/01_memory/progress.md"), "utf8")).toContain("- Jobs: tests [succeeded, exit 0]")
    await rt.dispose()
  })

  it("the poll finds an end the watch missed; a failure asks for a reply", async () => {
    const { rt, deps, proc } = await setup()
    const j = await rt.jobs.start({ command: "make", sessionId: "ses_o", agent: "oracle" })
    await rt.jobs.idle()
    finish(rt.jobs.dir(j.id), { exitCode: 2 }, "error: boom\n")
    expect(rt.jobs.get(j.id)!.status).toBe("running")
    deps.time.advance(POLL_MS)
    await rt.jobs.idle()
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "failed", exitCode: 2 })
    expect(posted(rt, "ses_o")[0]).toMatchObject({ kind: "failure" })
    expect(posted(rt, "ses_o")[0]!.text).toContain("failed (exit 2)")
    expect(proc.watchers.size).toBe(0)
    await rt.dispose()
  })

  it("records a timeout the wrapper enforced, and says so", async () => {
    const { rt, proc } = await setup()
    const j = await rt.jobs.start({ command: "sleep 99", sessionId: "ses_o", agent: "oracle", timeoutMs: 5_000 })
    expect(proc.spawned[0]!.args[4]).toBe("5000")
    finish(rt.jobs.dir(j.id), { exitCode: null, signal: "TERM", timedOut: true })
    proc.watchers.get(rt.jobs.dir(j.id))!()
    await rt.jobs.idle()
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "timed_out", signal: "TERM", reason: "ran longer than its 5.0 s limit; its process group was stopped" })
    expect(posted(rt, "ses_o")[0]).toMatchObject({ kind: "failure" })
    await rt.dispose()
  })

  it("a job whose task's agent started it keeps that task from completing, and reports to that session", async () => {
    const { rt, deps } = await setup()
    const t = await rt.tasks.delegate({ parentSessionId: "ses_o", agent: "builder", prompt: "build it" })
    for (let i = 0; i < 20 && !rt.tasks.get(t.id)!.sessionId; i++) await new Promise((r) => setImmediate(r))
    const child = rt.tasks.get(t.id)!.sessionId!
    const j = await rt.jobs.start({ command: "make", sessionId: child, agent: "builder" })
    expect(j.taskId).toBe(t.id)
    deps.fakeHost.outcomes.set(child, { completed: true, text: "started the build", createdAt: deps.time.now })
    await rt.tasks.onIdle(child)
    expect(rt.tasks.get(t.id)!.status).toBe("running")
    finish(rt.jobs.dir(j.id), { exitCode: 0 })
    deps.time.advance(POLL_MS)
    await rt.jobs.idle()
    expect(posted(rt, child)).toHaveLength(1)
    await rt.dispose()
  })
})

describe("jobs: restart", () => {
  it("ends a job that finished while the server was down, delivers once, and never again", async () => {
    // While no server runs, the wrapper records the end.
    const { dir, proc, j, second } = await acrossRestart("npm run build", (j, first, proc) => {
      finish(first.jobs.dir(j.id), { exitCode: 0 }, "built\n")
      proc.alive.delete(j.pgid)
    })
    expect(second.rt.jobs.get(j.id)!.status).toBe("running")
    await second.rt.startBackground()
    expect(second.rt.jobs.get(j.id)!.status).toBe("succeeded")
    expect(posted(second.rt, "ses_o")).toHaveLength(1)
    await second.rt.dispose()
    const third = await setup(dir, proc)
    await third.rt.startBackground()
    // Delivered by the second server; the third makes and delivers none.
    expect(posted(third.rt, "ses_o")).toHaveLength(0)
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8").match(/"from":"job"/g)).toHaveLength(1)
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8").match(/"job.ended"/g)).toHaveLength(1)
    await third.rt.dispose()
  })

  it("watches a job whose process group still lives, and ends it when it does", async () => {
    const { proc, j, second } = await acrossRestart("sleep 9")
    await second.rt.startBackground()
    expect(second.rt.jobs.get(j.id)!.status).toBe("running")
    finish(second.rt.jobs.dir(j.id), { exitCode: 0 })
    proc.watchers.get(second.rt.jobs.dir(j.id))!()
    await second.rt.jobs.idle()
    expect(second.rt.jobs.get(j.id)!.status).toBe("succeeded")
    await second.rt.dispose()
  })

  it("ends a job that is gone without a record as lost", async () => {
    const { j, second } = await acrossRestart("sleep 9", (j, _first, proc) => proc.alive.delete(j.pgid))
    await second.rt.startBackground()
    expect(second.rt.jobs.get(j.id)).toMatchObject({ status: "failed", reason: "lost: the process is gone and left no exit record" })
    expect(posted(second.rt, "ses_o")[0]).toMatchObject({ kind: "failure" })
    expect(posted(second.rt, "ses_o")[0]!.text).toContain("lost: the process is gone and left no exit record")
    await second.rt.dispose()
  })
})

describe("jobs: cancel", () => {
  it("SIGTERM to the group; the wrapper's record says cancelled; the caller reports it, no message follows", async () => {
    const { rt, proc } = await setup()
    const j = await rt.jobs.start({ command: "sleep 99", sessionId: "ses_o", agent: "oracle" })
    proc.onTerm = (pgid) => {
      finish(rt.jobs.dir(j.id), { exitCode: null, signal: "TERM", cancelled: true })
      proc.alive.delete(pgid)
      proc.watchers.get(rt.jobs.dir(j.id))?.()
    }
    const said = await rt.jobs.cancel(j.id, "cancelled by oracle", { tell: false })
    expect(proc.signals).toEqual([{ pgid: j.pgid, signal: "SIGTERM" }])
    expect(readFileSync(join(rt.jobs.dir(j.id), "cancelled"), "utf8")).toBe("cancelled by oracle")
    expect(said).toMatch(new RegExp(`Cancelled job ${j.id} .*SIGTERM sent to its process group ${j.pgid}; it ended \\(signal TERM\\); no process of its group is left`))
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "cancelled", reason: "cancelled by oracle" })
    expect(posted(rt, "ses_o")).toHaveLength(0)
    expect(await rt.jobs.cancel(j.id, "again")).toMatch(/already ended: cancelled/)
    await rt.dispose()
  })

  it("SIGKILL after the grace when the group ignores SIGTERM; a cancel from elsewhere is reported", async () => {
    const { rt, deps, proc } = await setup()
    const j = await rt.jobs.start({ command: "trap '' TERM; sleep 99", sessionId: "ses_o", agent: "oracle" })
    proc.stubborn.add(j.pgid)
    const said = rt.jobs.cancel(j.id, "cancelled by the user (nso cancel)")
    await until(() => proc.signals.length === 1)
    await rt.jobs.idle()
    expect(rt.jobs.get(j.id)!.status).toBe("running")
    deps.time.advance(1000)
    await rt.jobs.idle()
    expect(proc.signals.map((s) => s.signal)).toEqual(["SIGTERM", "SIGKILL"])
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "cancelled", signal: "KILL" })
    expect(await said).toContain("it ended (signal KILL)")
    expect(posted(rt, "ses_o")[0]).toMatchObject({ kind: "status" })
    expect(posted(rt, "ses_o")[0]!.text).toContain("cancelled (cancelled by the user (nso cancel); it ignored SIGTERM and was killed)")
    await rt.dispose()
  })

  it("a cancel the CLI journals is carried out by the server", async () => {
    const { rt, proc } = await setup()
    const j = await rt.jobs.start({ command: "sleep 99", sessionId: "ses_o", agent: "oracle" })
    proc.onTerm = (pgid) => {
      finish(rt.jobs.dir(j.id), { exitCode: null, signal: "TERM", cancelled: true })
      proc.alive.delete(pgid)
      proc.watchers.get(rt.jobs.dir(j.id))?.()
    }
    const { Journal } = await import("../../plugin/journal/journal.js")
    const { nsoReducer } = await import("../../plugin/journal/state.js")
    const cli = await Journal.open(fakeDeps(), nsoReducer, { dir: join(rt.projectDir, ".opencode/nso"), fsync: false })
    await cli.journal.append({ type: "job.cancel_requested", id: j.id, by: "the user (nso cancel)" })
    await cli.journal.close()
    await rt.pullForeign()
    expect(rt.jobs.get(j.id)).toMatchObject({ status: "cancelled", reason: "cancelled by the user (nso cancel)" })
    await rt.dispose()
  })
})

describe("jobs: tools and permissions", () => {
  const ctx = (sessionID: string, agent = "oracle") => ({ sessionID, agent, messageID: "msg_x", directory: "", worktree: "", abort: new AbortController().signal, metadata: () => {}, ask: async () => {} })

  it("job_start returns the id at once; tasks lists the job, waits for its end and shows the tail; bad arguments are phrased for the model", async () => {
    const { rt, proc } = await setup()
    const { jobStartTool } = await import("../../plugin/opencode/tools/job-start.js")
    const { tasksTool } = await import("../../plugin/opencode/tools/tasks.js")
    const started = (await jobStartTool(rt).execute({ command: "make all", title: "make" }, ctx("ses_o") as never)) as { output: string; metadata: { jobId: string } }
    const id = started.metadata.jobId
    expect(started.output).toMatch(new RegExp(`^Started job ${id} \\(pid 4000, limit 3600 s\\)`))
    const list = (await tasksTool(rt).execute({}, ctx("ses_o") as never)) as string
    expect(list).toContain(`1 job(s), 1 running:\n${id} · job · running`)
    // wait_ms: the call returns when the job ends, not after the wait.
    const waiting = tasksTool(rt).execute({ id, wait_ms: 60_000 }, ctx("ses_o") as never) as Promise<string>
    await rt.jobs.idle()
    finish(rt.jobs.dir(id), { exitCode: 0 }, "compiled\n")
    proc.alive.delete(4000)
    proc.watchers.get(rt.jobs.dir(id))!()
    const report = await waiting
    expect(report).toContain(`Job ${id} ("make") succeeded (exit 0)`)
    expect(report).toContain("Last 1 line(s) of output:\ncompiled")
    await expect(jobStartTool(rt).execute({ command: "make", timeout_ms: -1 }, ctx("ses_o") as never)).rejects.toThrow(/^job_start: timeout_ms must be a whole number/)
    await expect(tasksTool(rt).execute({ id, message: "hi" }, ctx("ses_o") as never)).rejects.toThrow(/is a shell job: it reads no messages/)
    await expect(tasksTool(rt).execute({ id: "job_nothere" }, ctx("ses_o") as never)).rejects.toThrow(/No job "job_nothere"/)
    // A read-only agent is refused before OpenCode's permission is even asked.
    let asked = false
    await expect(jobStartTool(rt).execute({ command: "ls" }, { ...ctx("ses_s", "scout"), ask: async () => void (asked = true) } as never)).rejects.toThrow(/NSO refused the job: the scout agent may not run it/)
    expect(asked).toBe(false)
    await rt.dispose()
  })

  it("job_start is denied in OpenCode's permissions to a profile that may not run bash, and mirrors nothing else", async () => {
    const { permissionRules } = await import("../../plugin/opencode/permissions.js")
    const { Profile } = await import("../../plugin/agents/profiles.js")
    const p = (over: object) => Profile.parse({ name: "x", description: "x", prompt: "x", ...over })
    expect(permissionRules(p({ permission: { bash: "deny" } }), true)).toMatchObject({ job_start: "deny" })
    expect(permissionRules(p({ tools: { denied: ["bash"] } }), true)).toMatchObject({ job_start: "deny" })
    expect(permissionRules(p({ tools: { allowed: ["read"] } }), true)).toMatchObject({ job_start: "deny" })
    expect(permissionRules(p({}), true)).not.toHaveProperty("job_start")
    expect(permissionRules(p({ permission: { bash: { "npm *": "allow" } } }), true)).not.toHaveProperty("job_start")
  })
})
