import { execFileSync } from "node:child_process"
import { existsSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from "vitest"
import type { Job } from "../../plugin/jobs/job.js"
import { type RunningOpencode } from "../../scripts/harness/opencode.js"
import { serverFor } from "../../scripts/project.js"
import { allIdle, journal, liveServer, newSession, ownServers, prompt, transcript, until } from "./helpers.js"
import { LIMITS } from "./limits.js"

/** A command that runs until the test creates the file `gate` in the project, then prints and exits. */
const gated = (gate: string, out: string, exit = 0) => `while [ ! -e ${gate} ]; do sleep 0.05; done; echo ${out}; echo second-line; exit ${exit}`

const jobs = (oc: RunningOpencode): Job[] => {
  const byId = new Map<string, Job>()
  for (const r of journal(oc)) {
    if (r.e.type === "job.started") byId.set((r.e.job as Job).id, r.e.job as Job)
    if (r.e.type === "job.ended") byId.set(r.e.id as string, { ...byId.get(r.e.id as string)!, ...(r.e.end as object) })
  }
  return [...byId.values()]
}
const job = (oc: RunningOpencode, title: string) => jobs(oc).find((j) => j.title === title)

/** A job a failed test left running (waiting for a gate that never came) is stopped, not leaked. */
function stopAll(list: readonly Job[]): void {
  for (const j of list)
    try {
      process.kill(-j.pgid, "SIGKILL")
    } catch {
      // gone already
    }
}

/** Whether any process of the group is left. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0)
    return true
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ESRCH") return false
    throw err
  }
}

describe("background jobs on a real server", () => {
  const srv = liveServer({ nso: { buffer: { pauseMs: 300 }, init: { sweepDelayMs: 50 }, jobs: { killGraceMs: 2000 } } })
  const model = srv.model
  let oc: RunningOpencode
  beforeAll(() => {
    oc = srv.oc
  })
  afterAll(() => stopAll(jobs(oc)))

  it("job_start returns while the job runs, the user keeps chatting, the completion with exit 0 and the tail arrives at the pause", async () => {
    model.script([
      { when: { user: "run the slow build", hasTool: "job_start" }, reply: { toolCalls: [{ name: "job_start", args: { command: gated("gate-build", "built-ok"), title: "slow build" } }] }, times: 1 },
      { when: { toolResult: "Started job" }, reply: { text: "The build runs in the background." }, times: 1 },
      { when: { user: "meanwhile, what is 2+2" }, reply: { text: "4." }, times: 1 },
      { when: { user: "[NSO · job · completion]" }, reply: { text: "The build passed." }, times: 1 },
      { when: { userMatch: "job status\\? (job_\\w+)" }, reply: { toolCalls: [{ name: "tasks", args: { id: "$1" } }] }, times: 1 },
      { when: { toolResult: "Last 2 line(s)" }, reply: { text: "It printed built-ok." }, times: 1 },
      { when: { user: "list the background work" }, reply: { toolCalls: [{ name: "tasks", args: {} }] }, times: 1 },
      { when: { toolResult: "job(s)" }, reply: { text: "One job." }, times: 1 },
    ])
    const root = await newSession(oc, "jobs")
    await prompt(oc, root, "please run the slow build")
    // The tool returned (the Oracle answered after its result) while the job still waits for its gate.
    const started = model.requests.find((r) => r.lastToolResult?.includes("Started job"))!
    expect(started.lastToolResult).toMatch(/Started job job_\w+ \(pid \d+, limit 3600 s\)/)
    const j = job(oc, "slow build")!
    expect(j.status).toBe("running")
    expect(existsSync(join(oc.projectDir, "gate-build"))).toBe(false)
    // The user keeps chatting: a reply while the job runs.
    await prompt(oc, root, "meanwhile, what is 2+2")
    expect((await transcript(oc.client, root)).at(-1)!.text).toBe("4.")
    expect(job(oc, "slow build")!.status).toBe("running")
    // No result reached the session while the job ran.
    expect((await transcript(oc.client, root)).some((m) => m.nso && m.text.includes(j.id))).toBe(false)
    writeFileSync(join(oc.projectDir, "gate-build"), "")
    const done = await model.waitFor((r) => r.lastUser.includes("[NSO · job · completion]"), { what: "the job's completion reaching the Oracle" })
    expect(done.lastUser).toContain(`Job ${j.id} ("slow build") succeeded (exit 0)`)
    expect(done.lastUser).toContain("built-ok\nsecond-line")
    expect(done.lastUser).toContain(`Full log: .opencode/nso/jobs/${j.id}/output.log`)
    await allIdle(oc.client)
    const injected = (await transcript(oc.client, root)).filter((m) => m.nso && m.text.includes(j.id))
    expect(injected).toHaveLength(1)
    expect(injected[0]!.nso).toMatchObject({ source: "system", from: "job", kind: "completion" })
    expect(job(oc, "slow build")).toMatchObject({ status: "succeeded", exitCode: 0 })
    // The tasks tool shows the job and its output.
    await prompt(oc, root, `job status? ${j.id}`)
    const status = model.requests.find((r) => r.lastToolResult?.includes(`Job ${j.id}`))!
    expect(status.lastToolResult).toContain(`Job ${j.id} ("slow build") succeeded (exit 0)`)
    expect(status.lastToolResult).toContain("Last 2 line(s) of output:\nbuilt-ok\nsecond-line")
    await prompt(oc, root, "list the background work")
    const listed = model.requests.find((r) => r.lastToolResult?.includes("job(s)"))!
    expect(listed.lastToolResult).toMatch(new RegExp(`1 job\\(s\\), 0 running:\n${j.id} · job · succeeded \\(exit 0\\) after [\\d.]+ s · "slow build"`))
  })

  it("a failing job gets a model reply", async () => {
    model.script([
      { when: { user: "run the failing check" }, reply: { toolCalls: [{ name: "job_start", args: { command: "echo 'check: 3 errors' >&2; exit 3", title: "failing check" } }] }, times: 1 },
      { when: { toolResult: "Started job" }, reply: { text: "Started." }, times: 1 },
      { when: { user: "[NSO · job · failure]" }, reply: { text: "The check failed with 3 errors." }, times: 1 },
    ])
    const root = await newSession(oc, "failing job")
    await prompt(oc, root, "run the failing check")
    const failed = await model.waitFor((r) => r.lastUser.includes("[NSO · job · failure]"), { what: "the failure reaching the Oracle" })
    expect(failed.lastUser).toMatch(/Job job_\w+ \("failing check"\) failed \(exit 3\)/)
    expect(failed.lastUser).toContain("check: 3 errors")
    await allIdle(oc.client)
    expect((await transcript(oc.client, root)).at(-1)!.text).toBe("The check failed with 3 errors.")
  })

  it("cancel through the tasks tool kills the whole process group", async () => {
    model.script([
      { when: { user: "start the server job" }, reply: { toolCalls: [{ name: "job_start", args: { command: "sleep 300 & sleep 300 & wait", title: "server job" } }] }, times: 1 },
      { when: { toolResult: "Started job" }, reply: { text: "Started." }, times: 1 },
    ])
    const root = await newSession(oc, "cancel job")
    await prompt(oc, root, "start the server job")
    const j = job(oc, "server job")!
    expect(groupAlive(j.pgid)).toBe(true)
    model.script([
      { when: { user: "stop it" }, reply: { toolCalls: [{ name: "tasks", args: { id: j.id, cancel: true } }] }, times: 1 },
      { when: { toolResult: "Cancelled job" }, reply: { text: "Stopped." }, times: 1 },
    ])
    await prompt(oc, root, "stop it")
    const said = model.requests.find((r) => r.lastToolResult?.includes("Cancelled job"))!.lastToolResult!
    expect(said).toContain(`Cancelled job ${j.id} ("server job"): SIGTERM sent to its process group ${j.pgid}; it ended`)
    const ps = () => execFileSync("ps", ["-eo", "pid,pgid,ppid,stat,args"], { encoding: "utf8" }).split("\n").filter((l) => l.trim().split(/\s+/)[1] === String(j.pgid)).join(" | ")
    console.log(`group ${j.pgid} right after the cancel: ${ps() || "(none)"}`)
    await until(() => !groupAlive(j.pgid), "no process of the job's group left", { saw: ps })
    expect(job(oc, "server job")).toMatchObject({ status: "cancelled", reason: "cancelled by oracle" })
    // The tool said so; no message follows.
    await allIdle(oc.client)
    expect((await transcript(oc.client, root)).filter((m) => m.nso && m.text.includes(j.id))).toHaveLength(0)
  })

  it("a background agent's job keeps its task open; the job's end goes to that agent, which then finishes the task", async () => {
    model.script([
      { when: { user: "delegate the build" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "builder: run the build job", title: "build via job" } }] }, times: 1 },
      { when: { toolResult: "Started task" }, reply: { text: "Delegated." }, times: 1 },
      { when: { user: "builder: run the build job" }, reply: { toolCalls: [{ name: "job_start", args: { command: gated("gate-task", "task-job-done"), title: "task build" } }] }, times: 1 },
      { when: { toolResult: "Started job" }, reply: { text: "Build started; waiting for it." }, times: 1 },
      { when: { user: "task-job-done" }, reply: { text: "The build job passed." }, times: 1 },
      { when: { user: "The build job passed." }, reply: { text: "The builder is done." }, times: 1 },
    ])
    const root = await newSession(oc, "task job")
    await prompt(oc, root, "delegate the build")
    const task = () => journal(oc).filter((r) => r.e.type === "task.created").map((r) => r.e.task as { id: string; title: string }).find((t) => t.title === "build via job")!
    const status = () => journal(oc).filter((r) => r.e.type === "task.updated" && r.e.id === task().id && (r.e.patch as { status?: string }).status).map((r) => (r.e.patch as { status: string }).status).at(-1)
    const turn = await model.waitFor((r) => r.lastToolResult?.includes("Started job") ?? false, { what: "the builder's turn after job_start" })
    await until(() => turn.respondedAt > 0, "the builder's reply sent")
    await allIdle(oc.client)
    // The builder's turn is over and its session idle, but its job waits for the gate: the task is not done.
    const j = job(oc, "task build")!
    expect(j).toMatchObject({ status: "running", taskId: task().id })
    expect(status()).toBe("running")
    writeFileSync(join(oc.projectDir, "gate-task"), "")
    const back = await model.waitFor((r) => r.lastUser.includes("task-job-done"), { what: "the job's end in the builder's session" })
    expect(back.lastUser).toContain("[NSO · job · completion]")
    await model.waitFor((r) => r.lastUser.includes("The build job passed."), { what: "the task's result reaching the Oracle" })
    await until(() => status() === "completed", "the task completed", { saw: () => String(status()) })
    await allIdle(oc.client)
    // The job's report went to the builder's session, not the Oracle's.
    expect((await transcript(oc.client, root)).some((m) => m.text.includes(j.id))).toBe(false)
  })

  it("a read-only profile cannot start a job: the tool is hidden, and a call made anyway is refused", async () => {
    model.script([
      { when: { user: "scout: run the tests" }, reply: { toolCalls: [{ name: "job_start", args: { command: "touch scout-ran.txt" } }] }, times: 1 },
      { when: { toolResult: "job_start" }, reply: { text: "I may not run commands." }, times: 1 },
      { when: { user: "builder: anything" }, reply: { text: "ok" }, times: 1 },
    ])
    const s = (await oc.client.session.create({ body: { title: "scout" } })).data!.id
    await oc.client.session.prompt({ path: { id: s }, body: { agent: "scout", parts: [{ type: "text", text: "scout: run the tests" }] } })
    const first = model.requests.find((r) => r.lastUser.includes("scout: run the tests") && !r.lastToolResult)!
    expect(first.tools).not.toContain("job_start")
    const result = model.requests.find((r) => r.lastToolResult?.includes("job_start"))!.lastToolResult!
    expect(result).toMatch(/unavailable|not available|refused|invalid|denied|no such tool/i)
    expect(existsSync(join(oc.projectDir, "scout-ran.txt"))).toBe(false)
    expect(jobs(oc).some((j) => j.command.includes("scout-ran"))).toBe(false)
    // An agent that may run bash is offered it.
    const b = (await oc.client.session.create({ body: { title: "builder" } })).data!.id
    await oc.client.session.prompt({ path: { id: b }, body: { agent: "builder", parts: [{ type: "text", text: "builder: anything" }] } })
    expect(model.requests.find((r) => r.lastUser.includes("builder: anything"))!.tools).toContain("job_start")
  })
})

describe("kill -9 of the server mid-job", () => {
  it("after the restart each job's completion is delivered exactly once: one that ended while no server ran, one that ends after", async () => {
    const { model, start } = ownServers()
    const nso = { buffer: { pauseMs: 200 }, init: { sweepDelayMs: 50 } }
    const first = await start({ nso })
    const seen: Job[] = []
    onTestFinished(() => stopAll(seen))
    model.script([
      {
        when: { user: "two long jobs" },
        reply: {
          toolCalls: [
            { name: "job_start", args: { command: gated("gate-a", "job-a-done"), title: "job a" } },
            { name: "job_start", args: { command: gated("gate-b", "job-b-done"), title: "job b" } },
          ],
        },
        times: 1,
      },
      { when: { toolResult: "Started job" }, reply: { text: "Both run." }, times: 1 },
      { when: { user: "job-b-done" }, reply: { text: "Both jobs are done." }, times: 1 },
    ])
    const root = await newSession(first, "restart")
    await prompt(first, root, "two long jobs")
    await until(() => jobs(first).length === 2, "both jobs journaled")
    seen.push(...jobs(first))
    await first.kill()
    // The jobs run on, holding none of the server's files: the CLI sees no server.
    expect(groupAlive(job(first, "job a")!.pgid)).toBe(true)
    expect(serverFor(join(first.projectDir, ".opencode/nso/journal.jsonl")).running).toBe(false)
    // Job a ends while no server runs; its wrapper records the end.
    const a = job(first, "job a")!
    writeFileSync(join(first.projectDir, "gate-a"), "")
    await until(() => existsSync(join(first.projectDir, ".opencode/nso/jobs", a.id, "exit.json")), "job a's exit record")
    const second = await start({ nso, projectDir: first.projectDir, homeDir: first.homeDir })
    await second.client.session.list()
    // Job b still runs: job a's success is stored without a model turn.
    await until(async () => (await transcript(second.client, root)).some((m) => m.nso && m.text.includes("job-a-done")), "job a's completion in the Oracle's session after the restart")
    expect(model.requests.some((r) => r.lastUser.includes("job-a-done"))).toBe(false)
    // Job b still runs under the new server, which watches it; the last one to end gets a reply.
    expect(job(second, "job b")!.status).toBe("running")
    writeFileSync(join(first.projectDir, "gate-b"), "")
    const last = await model.waitFor((r) => r.lastUser.includes("job-b-done"), { what: "job b's completion" })
    expect(last.lastUser).toContain("[NSO · job · completion]")
    await allIdle(second.client)
    const msgs = (await transcript(second.client, root)).filter((m) => m.nso)
    expect(msgs.filter((m) => m.text.includes("job-a-done"))).toHaveLength(1)
    expect(msgs.filter((m) => m.text.includes("job-b-done"))).toHaveLength(1)
    expect(journal(second).filter((r) => r.e.type === "job.ended")).toHaveLength(2)
  }, LIMITS.ownServersTestMs)
})
