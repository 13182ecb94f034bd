import { spawn } from "node:child_process"
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it, onTestFinished } from "vitest"
import { createDeps } from "../../plugin/deps.js"
import { Journal } from "../../plugin/journal/journal.js"
import { nsoReducer } from "../../plugin/journal/state.js"
import { JobRunner } from "../../plugin/jobs/runner.js"
import type { Job } from "../../plugin/jobs/job.js"
import { Options } from "../../plugin/options.js"
import { Outbox } from "../../plugin/router/outbox.js"
import { isolateConfig, run } from "../helpers/cli.js"
import { tempDir } from "../helpers/fake-deps.js"

/**
 * `nso jobs`, `nso job`, `nso cancel <job id>` against real jobs: started by the same runner the
 * server uses (real detached processes), in a project where no server runs.
 */


/** Waits for a condition other processes bring about; bounded well below the test's limit. */
async function until(cond: () => boolean, what: string): Promise<void> {
  const end = Date.now() + 10_000
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Starts a real job in `dir` as the server would, journaled; the runner is stopped right after (no server). */
async function startJob(dir: string, command: string, title?: string): Promise<Job> {
  const deps = createDeps()
  const stateDir = ".opencode/nso"
  const { journal, state } = await Journal.open(deps, nsoReducer, { dir: join(dir, stateDir), fsync: false })
  const write = (e: Parameters<typeof journal.append>[0]) => {
    nsoReducer.apply(state, { v: 1, w: journal.writer, s: 0, t: Date.now(), e })
    return journal.append(e)
  }
  const outbox = new Outbox(deps, { tasks: state.tasks, push: (env) => write({ type: "message.buffered", envelope: env }) })
  const runner = new JobRunner(deps, Options.parse({}).jobs, { state, write, post: (m) => outbox.post(m), refuse: () => undefined, taskOf: () => undefined, projectDir: dir, stateDir })
  const j = await runner.start({ command, title, sessionId: "ses_root", agent: "oracle" })
  // A failed test leaves no job running.
  onTestFinished(() => {
    try {
      process.kill(-j.pgid, "SIGKILL")
    } catch {
      // ended
    }
  })
  runner.dispose()
  await journal.close()
  return j
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch {
    return false
  }
}

isolateConfig()

describe("nso jobs / job / cancel", () => {
  it("jobs lists running jobs; job shows status and output; --follow prints the rest until the job ends", async () => {
    const dir = tempDir()
    const j = await startJob(dir, "echo first; while [ ! -e gate ]; do sleep 0.02; done; echo last", "gated")
    const log = join(dir, ".opencode/nso/jobs", j.id, "output.log")
    await until(() => existsSync(log) && readFileSync(log, "utf8").includes("first"), "the job's first line")
    const list = await run(["jobs", "--dir", dir])
    expect(list.code).toBe(0)
    expect(list.out).toMatch(new RegExp(`^${j.id} · running\\s+· running [\\d.]+ s · - · "gated" · echo first`))
    expect(JSON.parse((await run(["jobs", "--dir", dir, "--json"])).out)).toMatchObject([{ id: j.id, status: "running", pgid: j.pgid }])
    const one = await run(["job", j.id, "--dir", dir])
    expect(one.out).toContain(`${j.id} "gated" running for`)
    expect(one.out).toContain("first")
    expect(one.out).toContain(`Full log: .opencode/nso/jobs/${j.id}/output.log`)
    expect((await run(["status", "--dir", dir])).out).toContain("Jobs: 1 running of 1 (nso jobs)")
    expect((await run(["tasks", "--dir", dir])).out).toContain(`1 background job(s) running (nso jobs): ${j.id} "gated"`)
    // Following: the gate opens while it follows; it prints what came and stops at the end.
    const following = run(["job", j.id, "--follow", "--dir", dir])
    writeFileSync(join(dir, "gate"), "")
    const f = await following
    expect(f.code).toBe(0)
    expect(f.out.indexOf("first")).toBeLessThan(f.out.indexOf("last"))
    // No server ran to journal the end: it says where the record is.
    expect(f.out).toContain(`${j.id} ended (its exit record is in .opencode/nso/jobs/${j.id}/`)
    expect(existsSync(join(dir, ".opencode/nso/jobs", j.id, "exit.json"))).toBe(true)
  })

  it("cancel with no server running stops the whole process group itself and records the end", async () => {
    const dir = tempDir()
    const j = await startJob(dir, "sleep 300 & sleep 300; wait", "sleepers")
    expect(groupAlive(j.pgid)).toBe(true)
    const r = await run(["cancel", j.id, "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toContain(`Cancelled job ${j.id} ("sleepers"): SIGTERM sent to its process group ${j.pgid}; it ended`)
    expect(r.out).toContain("No OpenCode server with NSO runs here")
    await until(() => !groupAlive(j.pgid), "no process of the group left")
    const { state } = await Journal.read(createDeps(), nsoReducer, join(dir, ".opencode/nso"))
    // (A cancel this soon after the start may reach the wrapper before it could record anything: still cancelled.)
    expect(state.jobs.get(j.id)).toMatchObject({ status: "cancelled", reason: expect.stringMatching(/^cancelled by the user \(nso cancel\)/) })
    // The session that started it hears of it when OpenCode runs here again.
    expect([...state.pending.values()].filter((e) => e.sessionId === "ses_root" && e.text.includes(`Job ${j.id}`))).toHaveLength(1)
    expect((await run(["cancel", j.id, "--dir", dir])).err).toContain(`job ${j.id} already ended: cancelled`)
  })

  it("cancel with a server running leaves it to the server: a journal request, the job untouched by the CLI", async () => {
    const dir = tempDir()
    const j = await startJob(dir, "sleep 300", "served")
    // Stands in for the server: another process holding the journal open.
    const holder = spawn("sh", ["-c", `exec 3<"${join(dir, ".opencode/nso/journal.jsonl")}"; sleep 30`], { stdio: "ignore" })
    onTestFinished(() => void holder.kill("SIGKILL"))
    await until(() => {
      try {
        return readdirSync(`/proc/${holder.pid}/fd`).includes("3")
      } catch {
        return false
      }
    }, "the stand-in server holding the journal")
    const r = await run(["cancel", j.id, "--dir", dir])
    expect(r.code).toBe(0)
    expect(r.out).toContain(`Cancellation of ${j.id} recorded in the journal; the running OpenCode server stops its process group`)
    const { state } = await Journal.read(createDeps(), nsoReducer, join(dir, ".opencode/nso"))
    expect(state.jobs.get(j.id)!.status).toBe("running")
    expect(readFileSync(join(dir, ".opencode/nso/journal.jsonl"), "utf8")).toContain(`"type":"job.cancel_requested","id":"${j.id}","by":"the user (nso cancel)"`)
    expect(groupAlive(j.pgid)).toBe(true)
  })

  it("bad ids get a clear error and exit 2", async () => {
    const dir = tempDir()
    await startJob(dir, "true")
    expect(await run(["job", "--dir", dir])).toMatchObject({ code: 2, err: expect.stringContaining("give the job id, e.g. nso job job_abc123") })
    expect(await run(["job", "job_nope", "--dir", dir])).toMatchObject({ code: 2, err: expect.stringContaining('no job "job_nope" (see nso jobs --all)') })
    expect(await run(["cancel", "job_nope", "--dir", dir])).toMatchObject({ code: 2, err: expect.stringContaining('no job "job_nope" (see nso jobs)') })
    expect(await run(["job", "job_nope", "--lines", "x", "--dir", dir])).toMatchObject({ code: 2 })
  })
})
