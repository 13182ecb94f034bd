#!/usr/bin/env node
/**
 * `nso`: NSO from the command line, for a person or a script. Human output by default, `--json`
 * for scripts, `--help` everywhere; exits non-zero on error.
 */
import { existsSync, readFileSync, realpathSync } from "node:fs"
import { homedir } from "node:os"
import { dirname, isAbsolute, join, relative } from "node:path"
import { pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import { createDeps } from "../plugin/deps.js"
import { Journal } from "../plugin/journal/journal.js"
import { nsoReducer, type LiveState } from "../plugin/journal/state.js"
import { contextPath, formatContext, readContext, updateContext } from "../plugin/messaging/project-context.js"
import { loadOptions, type Options } from "../plugin/options.js"
import { CONFIG_DIR, PACKAGE_ROOT } from "../plugin/paths.js"
import { definedIn, loadProfiles, type LoadedProfiles, type Origin } from "../plugin/agents/load.js"
import { layerDirs } from "../plugin/agents/shared.js"
import { loadTeams, teamsOf, type LoadedTeams } from "../plugin/teams/load.js"
import { orderedMembers } from "../plugin/teams/team.js"
import { findQuestion, unanswerable } from "../plugin/questions/lookup.js"
import { TERMINAL_PHASES, TERMINAL_TASK_STATUSES, type JournalEvent, type Workflow } from "../plugin/protocol.js"
import { runLine, taskLine } from "../plugin/tasks/format.js"
import { rootSession } from "../plugin/tasks/tree.js"
import { addUsage, NO_USAGE, usageLine } from "../plugin/tasks/usage.js"
import {
  analyze,
  BANDS,
  bandOf,
  RECENT_DAYS,
  workflowStats,
  type AgentStats,
  type BestAgentResult,
  type Candidate,
  type OverheadAggregate,
  type OverheadStats,
  type ProfileInfo,
  type TeamStats,
  type Trend,
  type WorkflowStats,
} from "../plugin/telemetry/analysis.js"
import { openTelemetry, telemetryDir, type TelemetryFiles } from "../plugin/telemetry/read.js"
import { URL_FILE, urlFile } from "../plugin/dashboard/open.js"
import { replaySource } from "../plugin/dashboard/replay.js"
import { startDashboard } from "../plugin/dashboard/server.js"
import { findNso, findProject, isDir, ProjectError, serverFor, type NsoLookup, type Project, type ServerSeen } from "./project.js"
import { cancelWithoutServer, exitRecorded, follow, jobHeadline, jobsTable, outputPath } from "./job-commands.js"
import { jobDir, tailLines } from "../plugin/jobs/files.js"

export class UsageError extends Error {}

interface Ctx {
  dir: string
  /** How the project was found (see scripts/project.ts). */
  project: Project
  /** Where NSO is in the project's plugin list. */
  nso: NsoLookup
  /** Whether an OpenCode server with NSO runs for the project (looked up on demand). */
  server: () => ServerSeen
  options: Options
  /** Settings that were wrong (each dropped alone; the rest apply). */
  optionProblems: string[]
  stateDir: string
  contextDir: string
  json: boolean
  out: (s: string) => void
  /** For problems and notes beside the output (stderr). */
  err: (s: string) => void
  /** Set by a command that ends without an error but not entirely well (default 0). */
  exitCode?: number
}

interface Command {
  summary: string
  usage: string
  options?: Record<string, { type: "string" | "boolean"; short?: string; description: string }>
  /** Reads or writes NSO's state folder (default true): refused, with an explanation, when it does not exist. */
  needsState?: boolean
  run(ctx: Ctx, args: { values: Record<string, unknown>; positionals: string[] }): Promise<unknown>
}

const deps = createDeps()

/** Bounds the CLI keeps (tests shorten them). */
export const limits = {
  /** How long `nso team run` waits for the server to start the run. */
  teamRunWaitMs: 10_000,
  teamRunPollMs: 100,
}

/** How long `nso dashboard` serves its read-only view: until Ctrl+C or SIGTERM (tests end it sooner). */
export const dashboardServing = {
  until: (): Promise<void> =>
    new Promise<void>((resolve) => {
      process.once("SIGINT", () => resolve())
      process.once("SIGTERM", () => resolve())
    }),
}

/** Whether a dashboard answers at `url` (its token included) within a second and a half. */
async function answers(url: string): Promise<boolean> {
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(1_500) })
    return r.ok
  } catch {
    return false
  }
}

/** Profiles and teams as the plugin loads them for this project: every layer, shared folders included. */
async function loadDefinitions(ctx: Ctx): Promise<{ profiles: LoadedProfiles; teams: LoadedTeams; dirs: ReturnType<typeof layerDirs> }> {
  const o = ctx.options
  const dirs = layerDirs({ configDir: CONFIG_DIR, projectDir: ctx.dir, stateDir: ctx.stateDir, agentsPaths: o.agentsPaths, teamsPaths: o.teamsPaths, home: homedir(), env: process.env })
  const profiles = await loadProfiles(deps, dirs.agents, o.agents)
  const teams = await loadTeams(deps, dirs.teams, o.teams, profiles.profiles)
  return { profiles, teams, dirs }
}

/** A path for people: inside the project relative to it, under the home folder with `~`. */
function shortPath(ctx: Ctx, path: string): string {
  const inProject = relative(ctx.dir, path)
  if (inProject && !inProject.startsWith("..") && !isAbsolute(inProject)) return inProject
  const inHome = relative(homedir(), path)
  if (inHome && !inHome.startsWith("..") && !isAbsolute(inHome)) return join("~", inHome)
  return path
}

/** Where a definition came from, for people: `(nso) config/…`, `(shared) ~/…`, `.opencode/nso/…`, `opencode.json …`. */
function originText(ctx: Ctx, o: Origin): string {
  if (o.layer === "shipped") return `(nso) ${relative(PACKAGE_ROOT, o.where)}`
  if (o.layer === "shared") return `(shared) ${shortPath(ctx, o.where)}`
  if (o.layer === "project") return relative(ctx.dir, o.where)
  return o.where
}

/** Appends one event durably, as one more writer of the journal. */
async function appendOne(ctx: Ctx, event: JournalEvent): Promise<void> {
  // Never compacts from here: the server owns compaction.
  const { journal } = await Journal.open(deps, nsoReducer, { dir: join(ctx.dir, ctx.stateDir), maxBytes: Number.MAX_SAFE_INTEGER })
  try {
    await journal.append(event)
  } finally {
    await journal.close()
  }
}

async function state(ctx: Ctx): Promise<{ state: LiveState; report: Awaited<ReturnType<typeof Journal.read>>["report"] }> {
  return Journal.read(deps, nsoReducer, join(ctx.dir, ctx.stateDir))
}

function readLines(path: string): Record<string, unknown>[] {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch {
    return []
  }
  const out: Record<string, unknown>[] = []
  for (const line of text.split("\n")) {
    if (!line) continue
    try {
      out.push(JSON.parse(line) as Record<string, unknown>)
    } catch {
      // A torn line while the server writes: skip it.
    }
  }
  return out
}

/**
 * A job: the running server cancels it (a journal request, as for tasks); with no server, the CLI
 * stops the process group itself and records the end.
 */
async function cancelJob(ctx: Ctx, s: LiveState, id: string): Promise<unknown> {
  const j = s.jobs.get(id)
  if (!j) throw new UsageError(`no job "${id}" (see nso jobs)`)
  if (j.status !== "running") throw new UsageError(`job ${id} already ended: ${j.status}`)
  const server = ctx.server()
  if (server.running) {
    await appendOne(ctx, { type: "job.cancel_requested", id, by: "the user (nso cancel)" })
    if (ctx.json) return { id, requested: true, serverRunning: true }
    ctx.out(`Cancellation of ${id} recorded in the journal; ${afterAppend(server, "stops its process group (SIGTERM, then SIGKILL after the grace)")}`)
    return undefined
  }
  const { said, job } = await cancelWithoutServer(deps, { projectDir: ctx.dir, stateDir: ctx.stateDir }, ctx.options.jobs, s, id, "the user (nso cancel)")
  if (ctx.json) return { id, cancelled: job.status !== "running", status: job.status, serverRunning: server.running ?? null }
  ctx.out(`${said} No OpenCode server with NSO runs here (${server.how}): nso stopped it and recorded the end.`)
  return undefined
}

/** Where NSO is listed, in one line. */
function pluginLine(ctx: Ctx): string {
  const { entries, problems } = ctx.nso
  const unread = problems.length ? ` (could not read: ${problems.join("; ")})` : ""
  if (!entries.length) return `not found in the plugin list of ${ctx.project.configFiles.map((f) => f.path).join(", ") || "any opencode.json(c)"} nor in .opencode/plugin(s)/${unread}`
  const where = entries.map((e) => `${e.spec} (${relative(ctx.dir, e.source) || e.source})`).join("; ")
  return `${where}${entries.length > 1 ? ` — listed ${entries.length} times, so OpenCode loads it more than once` : ""}${unread}`
}

/** What happens to a record `nso` appended, depending on whether a server is there to act on it. */
function afterAppend(server: ServerSeen, action: string): string {
  if (server.running) return `the running OpenCode server ${action} (${server.how}).`
  if (server.running === false) return `no OpenCode server with NSO is running for this project (${server.how}), so nothing acts on it until OpenCode runs here again.`
  return `a running OpenCode server with NSO ${action}; whether one runs: ${server.how}.`
}

/** The explanation when the project has no NSO state folder. */
function noState(ctx: Ctx): string {
  const stateDir = join(ctx.dir, ctx.stateDir)
  const lines = [`No NSO state in ${ctx.dir} (${ctx.stateDir}/ not found). Is NSO loaded in this project?`]
  if (ctx.nso.entries.length)
    lines.push(
      `NSO is in its plugin list (${pluginLine(ctx)}); it creates ${relative(ctx.dir, stateDir)}/ when OpenCode started in ${ctx.dir} opens the project. ` +
        `NSO keeps its state in the folder OpenCode was started in: if you start OpenCode elsewhere, pass that folder with --dir.`,
    )
  else lines.push(`NSO is ${pluginLine(ctx)}. See README, "Add it to an OpenCode project".`)
  // State further up (OpenCode started in a parent folder)?
  for (let d = dirname(ctx.dir); ; d = dirname(d)) {
    if (isDir(join(d, ".opencode", "nso"))) {
      lines.push(`NSO state exists in ${d}: try --dir ${d}`)
      break
    }
    if (d === ctx.project.stop || dirname(d) === d) break
  }
  return lines.join("\n")
}

/** The running server's dashboard URL, as it wrote it at start (removed when it stops). */
function dashboardUrl(ctx: Ctx): string | undefined {
  const file = urlFile(ctx.dir, ctx.stateDir)
  return (existsSync(file) && readFileSync(file, "utf8").trim()) || undefined
}

const commands: Record<string, Command> = {
  dashboard: {
    summary: "The live dashboard's URL; without a running server, serves a read-only view of the journal on 127.0.0.1",
    usage: "nso dashboard [--port <n>] [--json]",
    options: { port: { type: "string", description: "port of the read-only view (default: any free port)" } },
    async run(ctx, { values }) {
      const written = dashboardUrl(ctx)
      if (written && (await answers(written))) {
        if (ctx.json) return { url: written, readOnly: false }
        ctx.out(`NSO dashboard (served by the running OpenCode server): ${written}`)
        return undefined
      }
      const port = values.port === undefined ? 0 : Number(values.port)
      if (!Number.isInteger(port) || port < 0 || port > 65_535) throw new UsageError(`--port must be a whole number from 0 to 65535 (0: any free port); got "${String(values.port)}"`)
      const source = await replaySource(deps, ctx.dir, ctx.stateDir)
      let dash
      try {
        dash = await startDashboard(source, { port, hold: true })
      } catch (err) {
        source.dispose()
        throw new Error(`could not serve the dashboard on 127.0.0.1:${port}: ${(err as Error).message}${port ? " (try another --port, or leave it out for any free port)" : ""}`)
      }
      const why = written ? `the URL in ${relative(ctx.dir, urlFile(ctx.dir, ctx.stateDir))} does not answer: its server has stopped` : `no ${URL_FILE} in ${relative(ctx.dir, join(ctx.dir, ctx.stateDir))}/`
      if (ctx.json) ctx.out(JSON.stringify({ url: dash.url, readOnly: true }))
      else
        ctx.out(
          [
            `No OpenCode server with NSO serves a dashboard for this project (${why}).`,
            `Serving a READ-ONLY view of NSO's journal on 127.0.0.1 (answer and cancel with \`nso answer\` / \`nso cancel\`):`,
            `  ${dash.url}`,
            "Press Ctrl+C to stop.",
          ].join("\n"),
        )
      try {
        await dashboardServing.until()
      } finally {
        await dash.close()
        source.dispose()
      }
      // Printed above already (the URL must be seen while it serves).
      ctx.json = false
      return undefined
    },
  },
  status: {
    summary: "What NSO holds for this project: tasks, pending messages, questions, sessions",
    usage: "nso status [--dir <project>] [--json]",
    async run(ctx) {
      const { state: s, report } = await state(ctx)
      const tasks = [...s.tasks.values()]
      const byStatus: Record<string, number> = {}
      for (const t of tasks) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1
      const spent = tasks.reduce((u, t) => addUsage(u, t.usage ?? NO_USAGE), NO_USAGE)
      const pending = [...s.pending.values()]
      const open = [...s.questions.values()].filter((q) => q.status === "open")
      const inits = readLines(join(ctx.dir, ctx.stateDir, "init.log"))
      const context = await readContext(deps, contextPath(ctx.dir, ctx.stateDir))
      const server = ctx.server()
      const data = {
        project: ctx.dir,
        foundFrom: ctx.project.start,
        plugin: { entries: ctx.nso.entries.map((e) => ({ spec: e.spec, source: e.source })), problems: ctx.nso.problems },
        optionProblems: ctx.optionProblems,
        server: { running: server.running ?? null, pids: server.pids.map((p) => p.pid), how: server.how },
        journal: { records: report.records, snapshot: report.snapshot, corrupt: report.corrupt, torn: report.torn },
        tasks: { total: tasks.length, active: tasks.filter((t) => !TERMINAL_TASK_STATUSES.has(t.status)).length, byStatus, usage: spent },
        jobs: { total: s.jobs.size, running: [...s.jobs.values()].filter((j) => j.status === "running").length },
        pendingMessages: pending.length,
        inDoubtDeliveries: s.inDoubt.size,
        openQuestions: open.map((q) => ({ id: q.id, from: q.from, text: q.text })),
        sessionsInitialized: s.initialized.size,
        lastInit: inits.at(-1),
        context: { goal: context.goal, status: context.status },
      }
      if (ctx.json) return data
      const lines = [
        `Project: ${ctx.dir}${ctx.project.start !== ctx.dir ? ` (found from ${ctx.project.start})` : ""}`,
        `NSO plugin: ${pluginLine(ctx)}`,
        `Options: ${ctx.optionProblems.length ? `${ctx.optionProblems.length} setting(s) ignored:${ctx.optionProblems.map((p) => `\n  ${p}`).join("")}` : "ok"}`,
        `OpenCode server with NSO: ${server.running === undefined ? server.how : server.running ? `running (${server.how})` : `none seen (${server.how})`}`,
        `Journal: ${report.records} records${report.snapshot ? " + snapshot" : ""}${report.corrupt || report.torn ? ` (${report.corrupt} corrupt, ${report.torn} torn lines skipped)` : ""}`,
        `Tasks: ${tasks.length} (${Object.entries(byStatus).map(([k, v]) => `${v} ${k}`).join(", ") || "none"})`,
        `Spent by background tasks: ${spent.turns ? usageLine(spent) : "nothing recorded yet"}`,
        `Dashboard: ${dashboardUrl(ctx) ?? "not running (nso dashboard serves a read-only view)"}`,
        `Jobs: ${s.jobs.size ? `${[...s.jobs.values()].filter((j) => j.status === "running").length} running of ${s.jobs.size} (nso jobs)` : "none"}`,
        `Pending agent messages: ${pending.length}${s.inDoubt.size ? `, ${s.inDoubt.size} deliveries in doubt` : ""}`,
        `Open questions: ${open.length}${open.map((q) => `\n  ${q.id} from ${q.from}: ${q.text}`).join("")}`,
        `Sessions initialised: ${s.initialized.size}${inits.length ? ` (last: ${String(inits.at(-1)!.session)} ${inits.at(-1)!.ok ? "ok" : "FAILED"} at ${String(inits.at(-1)!.time)})` : ""}`,
        `Goal: ${context.goal || "(not set)"}`,
        `Status: ${context.status || "(not set)"}`,
      ]
      ctx.out(lines.join("\n"))
      return undefined
    },
  },
  context: {
    summary: "Read or change the shared project goal, status and notes",
    usage: 'nso context [--goal "…"] [--status "…"] [--note "…"] [--by <name>] [--json]',
    options: {
      goal: { type: "string", description: "set the project goal" },
      status: { type: "string", description: "set the project status" },
      note: { type: "string", description: "append a note" },
      by: { type: "string", description: "who is writing (default: user)" },
    },
    async run(ctx, { values }) {
      const path = contextPath(ctx.dir, ctx.stateDir)
      const update = { goal: values.goal, status: values.status, note: values.note }
      const changing = Object.values(update).some((v) => v !== undefined)
      const c = changing ? await updateContext(deps, path, update, String(values.by ?? "user")) : await readContext(deps, path)
      if (ctx.json) return c
      ctx.out(formatContext(c))
      return undefined
    },
  },
  tasks: {
    summary: "Background tasks: status, agent, age, pending question, result",
    usage: "nso tasks [--all] [--json]",
    options: { all: { type: "boolean", description: "include finished tasks" } },
    async run(ctx, { values }) {
      const { state: s } = await state(ctx)
      const now = Date.now()
      const list = [...s.tasks.values()].filter((t) => values.all || !TERMINAL_TASK_STATUSES.has(t.status)).sort((a, b) => a.createdAt - b.createdAt)
      if (ctx.json) return list
      if (!list.length) ctx.out(values.all ? "No tasks." : "No active tasks (use --all for finished ones).")
      const open = [...s.questions.values()].filter((q) => q.status === "open")
      // Team runs first: their members are among the tasks below (marked "run wf_…").
      for (const w of [...s.workflows.values()].filter((x) => values.all || !TERMINAL_PHASES.has(x.phase)).sort((a, b) => a.createdAt - b.createdAt))
        ctx.out(runLine(w, [...s.tasks.values()].filter((t) => t.workflow?.id === w.id), now))
      for (const t of list) ctx.out(taskLine(t, now, open.find((q) => q.taskId === t.id)))
      const spent = [...s.tasks.values()].reduce((u, t) => addUsage(u, t.usage ?? NO_USAGE), NO_USAGE)
      if (spent.turns) ctx.out(`All background work so far: ${usageLine(spent)}`)
      const jobs = [...s.jobs.values()].filter((j) => j.status === "running")
      if (jobs.length) ctx.out(`${jobs.length} background job(s) running (nso jobs): ${jobs.map((j) => `${j.id} "${j.title}"`).join(", ")}`)
      return undefined
    },
  },
  questions: {
    summary: "Questions background agents asked (open ones unless --all)",
    usage: "nso questions [--all] [--json]",
    options: { all: { type: "boolean", description: "include answered questions" } },
    async run(ctx, { values }) {
      const { state: s } = await state(ctx)
      const list = [...s.questions.values()].filter((q) => values.all || q.status === "open").sort((a, b) => a.askedAt - b.askedAt)
      if (ctx.json) return list
      if (!list.length) ctx.out("No open questions.")
      for (const q of list)
        ctx.out(`${q.id} · ${q.from}${q.taskId ? ` · task ${q.taskId}` : ""} · ${q.status}${q.timedOutAt ? " (the agent stopped waiting)" : ""}\n  ${q.text}${q.options.length ? `\n  options: ${q.options.join(" | ")}` : ""}${q.answer ? `\n  answer (${q.answeredBy}): ${q.answer}` : ""}`)
      return undefined
    },
  },
  answer: {
    summary: "Answer a background agent's question: nso answer <question id> <answer…>",
    usage: "nso answer <question id> <answer…> [--json]",
    async run(ctx, { positionals }) {
      const [id, ...words] = positionals
      if (!id || !words.length) throw new UsageError("give the question id and the answer, e.g. nso answer q_abc123 use PostgreSQL")
      const { state: s } = await state(ctx)
      // The same id forms as /answer: exact, without the underscore, or an unambiguous prefix.
      const found = findQuestion(s.questions.values(), id)
      if ("error" in found) throw new UsageError(found.error)
      const q = found.question
      if (q.status === "answered") throw new UsageError(`question ${q.id} was already answered (${q.answeredBy}: ${q.answer})`)
      if (q.status === "closed") throw new UsageError(`question ${q.id} is closed: ${q.closedReason ?? "nobody is waiting for it"}; nobody can receive an answer`)
      const gone = unanswerable(q, s.tasks)
      if (gone) throw new UsageError(`question ${q.id} can no longer be answered: ${gone}`)
      const answer = words.join(" ")
      // The server running the task follows the journal and delivers the answer.
      await appendOne(ctx, { type: "question.answered", id: q.id, answer, by: "user (cli)" })
      const server = ctx.server()
      if (ctx.json) return { id: q.id, answer, recorded: true, serverRunning: server.running ?? null }
      ctx.out(`Answer to ${q.id} recorded in the journal; ${afterAppend(server, `passes it to ${q.from}`)}`)
      return undefined
    },
  },
  jobs: {
    summary: "Background shell jobs: id, status, run time, exit, title and command (running ones unless --all)",
    usage: "nso jobs [--all] [--json]",
    options: { all: { type: "boolean", description: "include ended jobs" } },
    async run(ctx, { values }) {
      const { state: s } = await state(ctx)
      const list = [...s.jobs.values()].filter((j) => values.all || j.status === "running").sort((a, b) => a.startedAt - b.startedAt)
      if (ctx.json) return list
      if (!list.length) ctx.out(values.all ? "No jobs." : "No running jobs (use --all for ended ones).")
      for (const line of jobsTable(list, Date.now())) ctx.out(line)
      return undefined
    },
  },
  job: {
    summary: "One background job: its status and output; --follow prints the output as it grows until the job ends",
    usage: "nso job <job id> [--follow] [--lines <n>] [--json]",
    options: {
      follow: { type: "boolean", short: "f", description: "keep printing the output until the job ends (Ctrl-C stops following, not the job)" },
      lines: { type: "string", description: "how many of the last output lines to show (default: the jobs.tailLines option)" },
    },
    async run(ctx, { values, positionals }) {
      const [id] = positionals
      if (!id) throw new UsageError("give the job id, e.g. nso job job_abc123 (see nso jobs)")
      const lines = positiveInt(values.lines, "--lines") ?? ctx.options.jobs.tailLines
      const find = async () => (await state(ctx)).state.jobs.get(id)
      const j = await find()
      if (!j) throw new UsageError(`no job "${id}" (see nso jobs --all)`)
      const dir = jobDir(ctx.dir, ctx.stateDir, id)
      const tail = await tailLines(deps, outputPath(dir), lines)
      if (ctx.json) return { ...j, output: tail, log: outputPath(dir) }
      ctx.out(jobHeadline(j, Date.now()))
      if (!values.follow || j.status !== "running") {
        ctx.out(tail.length ? tail.join("\n") : "(no output)")
        ctx.out(`Full log: ${relative(ctx.dir, outputPath(dir))}`)
        return undefined
      }
      // Following: from the start of the last lines, as they grow; Ctrl-C stops following only.
      const text = await deps.fs.readFile(outputPath(dir), "utf8").catch(() => "")
      const start = Buffer.byteLength(text) - Buffer.byteLength(tail.join("\n") + (tail.length && text.endsWith("\n") ? "\n" : ""))
      const stop = new AbortController()
      const onInt = () => stop.abort()
      process.once("SIGINT", onInt)
      try {
        const how = await follow(outputPath(dir), Math.max(0, start), ctx.out, async () => (await exitRecorded(deps, dir)) || (await find())?.status !== "running", stop.signal)
        if (how === "interrupted") {
          ctx.out(`(stopped following; ${id} keeps running — nso job ${id} --follow to watch again, nso cancel ${id} to stop it)`)
          return undefined
        }
        // The server journals the end a moment after the wrapper's record.
        let end = await find()
        for (let i = 0; i < 20 && end?.status === "running"; i++) {
          await new Promise((r) => setTimeout(r, 100))
          end = await find()
        }
        ctx.out(end && end.status !== "running" ? jobHeadline(end, Date.now()).split("\n")[0]! : `${id} ended (its exit record is in ${relative(ctx.dir, dir)}/; the server records it when it runs)`)
      } finally {
        process.off("SIGINT", onInt)
      }
      return undefined
    },
  },
  cancel: {
    summary: "Cancel a background task, team run (and everything it started) or job: nso cancel <task, run or job id>; nso cancel --all stops everything",
    usage: "nso cancel <task, run or job id> | --all [--session <id>] [--json]",
    options: {
      all: { type: "boolean", description: "stop every running task, team run and job (of every session, or of --session's tree)" },
      session: { type: "string", description: "with --all: only the work started from this OpenCode session" },
    },
    async run(ctx, { positionals, values }) {
      const [id] = positionals
      if (values.all) {
        if (id) throw new UsageError(`--all stops everything; leave out "${id}" (or drop --all to cancel only it)`)
        const { state: s } = await state(ctx)
        const sid = values.session === undefined ? undefined : String(values.session)
        const live = [...s.tasks.values()].filter((t) => !TERMINAL_TASK_STATUSES.has(t.status) && (!sid || rootSession(s.tasks, t) === sid))
        const jobs = [...s.jobs.values()].filter((j) => j.status === "running" && (!sid || j.sessionId === sid || live.some((t) => t.sessionId === j.sessionId)))
        if (!live.length && !jobs.length) throw new UsageError(sid ? `nothing to stop: no task of session ${sid} is running (see nso tasks)` : "nothing to stop: no task is running (see nso tasks)")
        await appendOne(ctx, { type: "task.cancel_all_requested", ...(sid ? { sessionId: sid } : {}), by: "user (cli)" })
        const server = ctx.server()
        if (ctx.json) return { all: true, sessionId: sid ?? null, tasks: live.map((t) => t.id), jobs: jobs.map((j) => j.id), requested: true, serverRunning: server.running ?? null }
        ctx.out(`Stopping all background work${sid ? ` of session ${sid}` : ""} (${live.length} task(s)${jobs.length ? `, ${jobs.length} job(s)` : ""} running) recorded in the journal; ${afterAppend(server, "stops every task, team run and job, deepest first")}`)
        return undefined
      }
      if (values.session !== undefined) throw new UsageError("--session goes with --all")
      if (!id) throw new UsageError("give the task or team run id, e.g. nso cancel tsk_abc123 or nso cancel wf_abc123 (see nso tasks), or --all to stop everything")
      const { state: s } = await state(ctx)
      if (id.startsWith("job_")) return cancelJob(ctx, s, id)
      if (id.startsWith("wf_")) {
        const w = s.workflows.get(id)
        if (!w) throw new UsageError(`no team run "${id}" (see nso tasks)`)
        if (TERMINAL_PHASES.has(w.phase)) throw new UsageError(`team run ${id} already ended (${w.phase})`)
      } else {
        const t = s.tasks.get(id)
        if (!t) throw new UsageError(`no task "${id}" (see nso tasks)`)
        if (TERMINAL_TASK_STATUSES.has(t.status)) throw new UsageError(`task ${id} already ended ${t.status}`)
      }
      await appendOne(ctx, { type: "task.cancel_requested", id, by: "user (cli)" })
      const server = ctx.server()
      if (ctx.json) return { id, requested: true, serverRunning: server.running ?? null }
      ctx.out(`Cancellation of ${id} recorded in the journal; ${afterAppend(server, "stops it and everything it started")}`)
      return undefined
    },
  },
  tell: {
    summary: 'Tell a running background task (or every member of a team run) something: nso tell <task or run id> "<text>"',
    usage: 'nso tell <task or run id> "<text>" [--json]',
    async run(ctx, { positionals }) {
      const [id, ...words] = positionals
      const text = words.join(" ").trim()
      if (!id || !text) throw new UsageError('give the task (or team run) id and the text, e.g. nso tell tsk_abc123 "use PostgreSQL, not SQLite" (nso tasks lists the ids)')
      const { state: s } = await state(ctx)
      let to: string
      if (id.startsWith("wf_")) {
        const w = s.workflows.get(id)
        if (!w) throw new UsageError(`no team run "${id}" (see nso tasks)`)
        if (TERMINAL_PHASES.has(w.phase)) throw new UsageError(`team run ${id} (${w.team}) already ended (${w.phase}); nobody in it can receive messages. Its result: nso tasks --all. To go on, start a new run.`)
        to = `every running member of team run ${id} (${w.team})`
      } else {
        const t = s.tasks.get(id)
        if (!t) throw new UsageError(`no task "${id}" (see nso tasks)`)
        if (TERMINAL_TASK_STATUSES.has(t.status))
          throw new UsageError(`task ${id} (${t.agent}: "${t.title}") already ended ${t.status}; it cannot receive messages. To go on with its work, ask the Oracle to delegate a follow-up task that says what to change.`)
        if (t.status === "queued") throw new UsageError(`task ${id} (${t.agent}) has not started yet, so it cannot receive messages; tell it once it runs (nso tasks shows when).`)
        to = `${t.agent} (${id})`
      }
      const server = ctx.server()
      if (server.running === false)
        throw new Error(`no OpenCode server with NSO is running for this project (${server.how}). A message is delivered by the server running the task: start OpenCode in ${ctx.dir} and tell it again.`)
      await appendOne(ctx, { type: "message.told", to: id, text, by: "user (nso CLI)" })
      if (ctx.json) return { to: id, text, recorded: true, serverRunning: server.running ?? null }
      ctx.out(
        `Message for ${to} recorded in the journal; ${afterAppend(server, "delivers it")} ` +
          `${id.startsWith("wf_") ? "Each member reads it" : "The agent reads it"} at its next turn, marked source: user (an agent waiting in ask_user gets it at once). ` +
          `If it cannot be delivered, the server says why in the session you talk to the Oracle in.`,
      )
      return undefined
    },
  },
  messages: {
    summary: "Messages agents sent each other (from .opencode/nso/messages.jsonl)",
    usage: "nso messages [--workflow <id>] [--all] [--limit N] [--json]",
    options: {
      workflow: { type: "string", description: "only this workflow (a team run id, or the Oracle session whose tasks share it)" },
      all: { type: "boolean", description: "show the text of private messages too" },
      limit: { type: "string", short: "n", description: "only the last N messages" },
    },
    async run(ctx, { values }) {
      const limit = values.limit === undefined ? undefined : Number(values.limit)
      if (limit !== undefined && (!Number.isInteger(limit) || limit <= 0)) throw new UsageError(`--limit expects a positive whole number, got "${String(values.limit)}"`)
      const all = readLines(join(ctx.dir, ctx.stateDir, "messages.jsonl")).filter((l) => l.type === "message" && (values.workflow === undefined || l.workflow === values.workflow))
      const lines = (limit === undefined ? all : all.slice(-limit)).map((l) => {
        if (!l.private || values.all) return l
        const { text: _hidden, ...rest } = l
        return { ...rest, text: null, hidden: true }
      })
      if (ctx.json) return lines
      if (!lines.length) ctx.out(values.workflow === undefined ? "No agent messages yet." : `No agent messages in workflow ${String(values.workflow)}.`)
      for (const l of lines) {
        const when = typeof l.time === "number" ? new Date(l.time).toISOString() : String(l.time)
        const from = `${String(l.from)}${l.fromTask ? ` (${String(l.fromTask)})` : ""}${l.source === "user" ? " [source: user]" : ""}`
        const body = l.hidden ? "(private: text hidden; --all shows it)" : `${l.private ? "(private) " : ""}${String(l.text ?? "")}`
        ctx.out(
          `${when}  ${String(l.workflow)}  ${from} → ${String(l.to)}  ${String(l.kind)}  hops ${String(l.hops ?? 0)}  ${String(l.id)}${l.replyTo ? `  reply to ${String(l.replyTo)}` : ""}  ${String(l.outcome)}\n  ${body}`,
        )
      }
      return undefined
    },
  },
  board: {
    summary: "The shared boards of agent workflows: findings, variables (latest value), decisions, broadcasts",
    usage: "nso board [--workflow <id>] [--json]",
    options: { workflow: { type: "string", description: "only this workflow (a team run id, or the Oracle session whose tasks share it)" } },
    async run(ctx, { values }) {
      const { state: s } = await state(ctx)
      const only = values.workflow === undefined ? undefined : String(values.workflow)
      if (only !== undefined && !s.board.has(only)) {
        const known = s.workflows.has(only) || [...s.tasks.values()].some((t) => t.parentSessionId === only)
        if (!known) throw new UsageError(`no workflow "${only}"; boards with posts: ${[...s.board.keys()].join(", ") || "(none)"}`)
      }
      const boards = [...s.board.entries()]
        .filter(([w]) => only === undefined || w === only)
        .map(([workflow, posts]) => {
          // A variable is shown once, in its latest value.
          const latest = new Map<string, string>()
          for (const p of posts) if (p.key) latest.set(p.key, p.id)
          const run = s.workflows.get(workflow)
          return { workflow, ...(run ? { team: run.team, goal: run.goal, phase: run.phase } : {}), posts: posts.filter((p) => !p.key || latest.get(p.key) === p.id) }
        })
      if (only !== undefined && !boards.length) boards.push({ workflow: only, posts: [] })
      if (ctx.json) return boards
      if (!boards.length) ctx.out("No board posts yet.")
      for (const b of boards) {
        const run = s.workflows.get(b.workflow)
        ctx.out(`${b.workflow}${run ? ` · team ${run.team} (${run.phase}): ${run.goal}` : " · tasks of that Oracle session"} — ${b.posts.length ? `${b.posts.length} post(s)` : "empty"}`)
        for (const p of b.posts)
          ctx.out(`  ${new Date(p.time).toISOString()}  ${p.kind}${p.key ? ` ${p.key}` : ""} · ${p.from}${p.fromTaskId ? ` (${p.fromTaskId})` : ""}: ${p.text}`)
      }
      return undefined
    },
  },
  agents: {
    summary: "Every agent profile: role, model, permissions, specialization, teams, where it was defined",
    usage: "nso agents [--json]",
    needsState: false,
    async run(ctx) {
      const opts = ctx.options
      const { profiles: loaded, teams } = await loadDefinitions(ctx)
      const rows = [...loaded.profiles.values()].map((p) => {
        const tier = p.model === "fast" || p.model === "strong" ? p.model : undefined
        const model = tier ? (opts.models[tier] ?? `default (tier "${tier}" not set in options.models)`) : (p.model ?? "default")
        const perms = [
          p.permission.edit ? `edit:${p.permission.edit}` : undefined,
          p.permission.bash ? `bash:${typeof p.permission.bash === "string" ? p.permission.bash : "rules"}` : undefined,
          p.permission.webfetch ? `webfetch:${p.permission.webfetch}` : undefined,
          p.delegates ? "delegates" : undefined,
          p.tools.denied.length ? `denies ${p.tools.denied.join(",")}` : undefined,
          p.tools.allowed.length ? `only ${p.tools.allowed.join(",")}` : undefined,
        ].filter(Boolean)
        const where = definedIn(loaded.origins.get(p.name) ?? {}).map((o) => originText(ctx, o))
        return {
          name: p.name,
          role: p.role,
          mode: p.mode,
          model,
          permissions: perms,
          specialization: p.specialization,
          description: p.description,
          definedIn: where,
          knowledge: p.knowledge.map((k) => k.folder),
          teams: teamsOf(teams.teams.values(), p.name),
        }
      })
      if (ctx.json) return { agents: rows, problems: loaded.problems }
      for (const r of rows)
        ctx.out(
          `${r.name.padEnd(22)} ${r.role.padEnd(11)} ${r.mode.padEnd(8)} model ${r.model}\n${"".padEnd(23)}${r.specialization || r.description}${r.permissions.length ? ` · ${r.permissions.join(" ")}` : ""}` +
            `${r.teams.length ? `\n${"".padEnd(23)}in teams ${r.teams.join(", ")}` : ""}\n${"".padEnd(23)}from ${r.definedIn.join(" + ")}`,
        )
      for (const p of loaded.problems) ctx.out(`problem: ${p}`)
      return undefined
    },
  },
  teams: {
    summary: "Every team: pattern, coordinator, members, use case, where it was defined",
    usage: "nso teams [--json]",
    needsState: false,
    async run(ctx) {
      const { profiles, teams, dirs } = await loadDefinitions(ctx)
      const rows = [...teams.teams.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((t) => ({
          name: t.name,
          description: t.description,
          pattern: t.pattern,
          coordinator: t.coordinator ?? null,
          useCase: t.use_case,
          members: orderedMembers(t).map((m): { agent?: string; team?: string; role?: string } => ({ agent: m.agent, team: m.team, role: m.role })),
          definedIn: definedIn(teams.origins.get(t.name) ?? {}).map((o) => originText(ctx, o)),
        }))
      // Some problems but no team at all: nothing this command was for worked.
      if (teams.problems.length && !rows.length) ctx.exitCode = 1
      if (ctx.json) return { teams: rows, problems: teams.problems, agentProblems: profiles.problems }
      if (!rows.length)
        ctx.out(
          `No teams. NSO reads them from ${[dirs.teams.shipped, ...dirs.teams.shared, dirs.teams.project].map((d) => (d === dirs.teams.shipped ? `(nso) ${relative(PACKAGE_ROOT, d)}` : shortPath(ctx, d))).join(", ")} and the teams option.`,
        )
      for (const r of rows) {
        const members = r.members.map((m) => `${m.agent ?? `team ${m.team}`}${m.role ? ` (${m.role})` : ""}`).join(", ")
        ctx.out(
          `${r.name.padEnd(22)} ${r.pattern.padEnd(19)}${r.coordinator ? `coordinator ${r.coordinator}` : "no coordinator"}${r.useCase ? ` · use case ${r.useCase}` : ""}\n` +
            `${"".padEnd(23)}${r.description}\n${"".padEnd(23)}members: ${members}\n${"".padEnd(23)}from ${r.definedIn.join(" + ")}`,
        )
      }
      for (const p of teams.problems) ctx.err(`problem: ${p}`)
      if (profiles.problems.length)
        ctx.err(`note: ${profiles.problems.length} agent profile problem(s), see nso agents; a team naming a profile that was left out is reported as naming an unknown one`)
      return undefined
    },
  },
  team: {
    summary: 'Run a team on a goal through the running OpenCode server: nso team run <team> "<goal>"',
    usage: 'nso team run <team> "<goal>" [--session <id>] [--json]',
    options: { session: { type: "string", description: "the session the run reports its result to (default: the running server chooses)" } },
    needsState: false,
    async run(ctx, { values, positionals }) {
      const [sub, name, ...words] = positionals
      if (sub !== "run") throw new UsageError(sub === undefined ? 'say what to do: nso team run <team> "<goal>" (nso teams lists the teams)' : `unknown team command "${sub}"; use nso team run <team> "<goal>"`)
      const goal = words.join(" ").trim()
      if (!name || !goal) throw new UsageError('give the team and the goal, e.g. nso team run code-review "review the payment module" (nso teams lists the teams)')
      const { teams } = await loadDefinitions(ctx)
      const team = teams.teams.get(name)
      if (!team) {
        const why = teams.problems.filter((p) => p.includes(`team "${name}"`))
        throw new UsageError(`no team "${name}"; teams: ${[...teams.teams.keys()].sort().join(", ") || "(none)"}${why.length ? `. It was left out: ${why.join("; ")}` : ""}`)
      }
      const server = ctx.server()
      if (server.running === false)
        throw new Error(`no OpenCode server with NSO is running for this project (${server.how}). A team run is started by the server: start OpenCode in ${ctx.dir} and run this again.`)
      const sessionId = values.session === undefined ? undefined : String(values.session)
      // Follow the journal from before the request: the server answers with `workflow.created`.
      const { journal } = await Journal.open(deps, nsoReducer, { dir: join(ctx.dir, ctx.stateDir), maxBytes: Number.MAX_SAFE_INTEGER })
      let created: Workflow | undefined
      try {
        await journal.append({ type: "workflow.requested", team: name, goal, ...(sessionId !== undefined ? { sessionId } : {}), by: "user (nso CLI)" })
        const deadline = Date.now() + limits.teamRunWaitMs
        while (!created && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, Math.min(limits.teamRunPollMs, Math.max(0, deadline - Date.now()))))
          for (const rec of await journal.readForeign())
            if (rec.e.type === "workflow.created" && rec.e.workflow.team === name && rec.e.workflow.goal === goal) created = rec.e.workflow
        }
      } finally {
        await journal.close()
      }
      if (!created)
        throw new Error(
          `the request to run team ${name} is in the journal, but no team run started within ${limits.teamRunWaitMs / 1000} s` +
            `${server.running === undefined ? ` (whether a server runs: ${server.how})` : ""}. The server may still start it: check nso tasks, and the server's log (${join(ctx.stateDir, "nso.log")}).`,
        )
      if (ctx.json) return { workflow: created.id, team: created.team, pattern: created.pattern, goal: created.goal, sessionId: created.parentSessionId }
      ctx.out(`Started team run ${created.id} (${created.team}, ${created.pattern}) — follow it with nso tasks`)
      return undefined
    },
  },
  log: {
    summary: "Recent tool calls made by agents (from .opencode/nso/log.jsonl)",
    usage: "nso log [--limit N] [--session <id>] [--tool <name>] [--json]",
    options: {
      limit: { type: "string", short: "n", description: "how many lines (default 20)" },
      session: { type: "string", description: "only this session" },
      tool: { type: "string", description: "only this tool" },
    },
    async run(ctx, { values }) {
      const limit = values.limit === undefined ? 20 : Number(values.limit)
      if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--limit expects a positive whole number, got "${String(values.limit)}"`)
      const lines = readLines(join(ctx.dir, ctx.stateDir, "log.jsonl"))
        .filter((l) => values.session === undefined || l.session === values.session)
        .filter((l) => values.tool === undefined || l.tool === values.tool)
        .slice(-limit)
      if (ctx.json) return lines
      if (!lines.length) ctx.out("No tool calls logged yet.")
      for (const l of lines)
        ctx.out(`${String(l.time)}  ${String(l.agent ?? "?").padEnd(10)} ${String(l.tool).padEnd(16)} ${l.ok ? "ok   " : "ERROR"} ${l.durationMs ?? "?"} ms  ${JSON.stringify(l.args)}${l.error ? `  ${String(l.error)}` : ""}`)
      return undefined
    },
  },
  stats: {
    summary: "Telemetry: workflows, coordination overhead, teams, agents, an agent's trend",
    usage: "nso stats workflows|overhead|teams|agents [--limit N] [--json]\n       nso stats trends <agent> [--days 30] [--json]",
    options: {
      days: { type: "string", description: "trends: how many days back (default 30; the last 7 are compared with the rest)" },
      limit: { type: "string", short: "n", description: "overhead: how many of the latest workflows to list (default 10); workflows: how many agent sequences (default 5)" },
    },
    async run(ctx, { values, positionals }) {
      const [sub, ...rest] = positionals
      const subs = ["workflows", "overhead", "teams", "agents", "trends"]
      if (!sub || !subs.includes(sub)) throw new UsageError(`${sub === undefined ? "say which statistics" : `unknown statistics "${sub}"`}: nso stats ${subs.join("|")} (trends takes an agent: nso stats trends <agent> [--days 30])`)
      const limit = positiveInt(values.limit, "--limit")
      const files = openTelemetry(deps, telemetryDir(ctx.dir, ctx.stateDir))
      const now = deps.clock.now()
      let data: unknown
      let lines: string[]
      if (sub === "trends") {
        const agent = rest[0]
        if (!agent) throw new UsageError("give the agent, e.g. nso stats trends builder [--days 30] (nso stats agents lists the agents with history)")
        const days = positiveInt(values.days, "--days") ?? 30
        if (days <= RECENT_DAYS) throw new UsageError(`--days must be more than ${RECENT_DAYS}: the trend compares the last ${RECENT_DAYS} days with the days before`)
        const trend = (await analyze(files.input, { now, trend: { agent, days } })).trend!
        data = trend
        lines = formatTrend(trend)
      } else if (sub === "workflows") {
        const w = await workflowStats(files.input.workflows, { top: limit ?? 5 })
        data = w
        lines = formatWorkflows(w)
      } else {
        const a = await analyze(files.input, { now, overhead: sub === "overhead", teams: sub === "teams", agents: sub === "agents", keep: limit ?? 10 })
        data = a.overhead ?? a.teams ?? a.agents
        lines = a.overhead ? formatOverhead(a.overhead) : a.teams ? formatTeams(a.teams) : formatAgents(a.agents!)
      }
      const read = readNote(ctx, files.report)
      if (ctx.json) return { ...(data as object), read: files.report }
      for (const l of lines) ctx.out(l)
      if (read) ctx.err(read)
      return undefined
    },
  },
  "best-agent": {
    summary: 'The best agent for a task, from past tasks and profiles: nso best-agent --task "API development"',
    usage: 'nso best-agent --task "<task>" [--domain <domain>] [--all] [--min-confidence 0.5] [--json]',
    options: {
      task: { type: "string", short: "t", description: "what the task is about (its words are matched against past tasks' keywords and profiles)" },
      domain: { type: "string", description: "the area, e.g. backend: agents whose profile or tasks mention it are preferred" },
      all: { type: "boolean", description: "rank every candidate" },
      "min-confidence": { type: "string", description: "the least confidence (0–1) to recommend an agent (default 0.5)" },
    },
    async run(ctx, { values, positionals }) {
      const task = String(values.task ?? positionals.join(" ")).trim()
      if (!task) throw new UsageError('say what the task is: nso best-agent --task "API development" [--domain backend]')
      let minConfidence: number | undefined
      if (values["min-confidence"] !== undefined) {
        minConfidence = Number(values["min-confidence"])
        if (!(minConfidence >= 0 && minConfidence <= 1)) throw new UsageError(`--min-confidence expects a number from 0 to 1, got "${String(values["min-confidence"])}"`)
      }
      const { profiles } = await loadDefinitions(ctx)
      // The primary agent (the Oracle) is who asks, not a candidate.
      const candidates: ProfileInfo[] = [...profiles.profiles.values()]
        .filter((p) => p.mode !== "primary")
        .map((p) => ({ name: p.name, specialization: p.specialization, tags: p.tags, description: p.description }))
      const files = openTelemetry(deps, telemetryDir(ctx.dir, ctx.stateDir))
      const query = { task, ...(values.domain !== undefined ? { domain: String(values.domain) } : {}), all: !!values.all, ...(minConfidence !== undefined ? { minConfidence } : {}) }
      const result = (await analyze(files.input, { now: deps.clock.now(), bestAgent: { query, profiles: candidates } })).bestAgent!
      const read = readNote(ctx, files.report)
      if (ctx.json) return { ...result, read: files.report }
      for (const l of formatBestAgent(result)) ctx.out(l)
      if (read) ctx.err(read)
      return undefined
    },
  },
}

// --- Telemetry, for people --------------------------------------------------------------------

/** A whole number ≥ 1 from an option, or undefined when not given. */
function positiveInt(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined
  const n = Number(v)
  if (!Number.isInteger(n) || n <= 0) throw new UsageError(`${name} expects a positive whole number, got "${String(v)}"`)
  return n
}

/** A line for stderr when reading the telemetry skipped lines. */
function readNote(ctx: Ctx, report: TelemetryFiles["report"]): string | undefined {
  const parts: string[] = []
  for (const [name, r] of Object.entries(report)) {
    if (r.invalid) parts.push(`${r.invalid} invalid line(s) in the ${name} log`)
    if (r.torn) parts.push(`${r.torn} torn line(s) in the ${name} log (cut short, or being written)`)
  }
  return parts.length ? `note: skipped ${parts.join(", ")} (${shortPath(ctx, telemetryDir(ctx.dir, ctx.stateDir))})` : undefined
}

const asPct = (rate: number | null, digits = 0) => (rate === null ? "–" : `${(rate * 100).toFixed(digits)}%`)
const pctText = (p: number | null) => (p === null ? "–" : `${p.toFixed(1)}%`)

/** Seconds as people read them: 45 s, 12.5 min, 3.2 h. */
export function duration(seconds: number | null): string {
  if (seconds === null) return "–"
  if (Math.abs(seconds) < 90) return `${Math.round(seconds)} s`
  if (Math.abs(seconds) < 5400) return `${(seconds / 60).toFixed(1)} min`
  return `${(seconds / 3600).toFixed(1)} h`
}

const BANDS_LINE = `Bands: < 15% efficient → ${BANDS[0]!.recommendation} · 15–30% moderate → ${BANDS[1]!.recommendation} · > 30% high → ${BANDS[2]!.recommendation}`

const pattern = (p: WorkflowStats["mostCommonPatterns"][number]) => `  ${`${p.count}×`.padStart(6)}  ${p.pattern}  (success ${asPct(p.successRate)})`

export function formatWorkflows(w: WorkflowStats): string[] {
  if (!w.total) return [`No completed workflows yet${w.running ? ` (${w.running} running)` : ""}. Every delegated task and team run is recorded in the telemetry as it ends.`]
  const kind = (name: string, k: WorkflowStats["byKind"]["team"]) => `  ${name.padEnd(10)} ${String(k.total).padStart(5)} · success ${asPct(k.successRate)} · avg ${duration(k.avgDurationSeconds)}`
  return [
    `Workflows: ${w.total} completed${w.running ? ` (${w.running} running)` : ""} · success ${asPct(w.successRate)} · avg ${duration(w.avgDurationSeconds)} · ${w.avgAgentsPerWorkflow!.toFixed(1)} agents per workflow`,
    kind("team runs", w.byKind.team),
    kind("tasks", w.byKind.task),
    ...(w.mostCommonSequences.length ? ["Most common agent sequences (2 or more agents):", ...w.mostCommonSequences.map(pattern)] : []),
    "Most common workflows overall:",
    ...w.mostCommonPatterns.map(pattern),
  ]
}

function figureLine(label: string, f: OverheadAggregate["coverage"]): string {
  if (f.overheadPct === null) return `${label}: –`
  const b = bandOf(f.overheadPct)
  return `${label}: ${pctText(f.overheadPct)} → ${b.recommendation} (${b.meaning}); ${duration((f.avgCoordinationMinutes ?? 0) * 60)} per workflow`
}

export function formatOverhead(o: OverheadStats): string[] {
  if (!o.workflows) {
    const left = Object.entries(o.skipped).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`)
    return [`No completed workflow with invocations to measure yet${left.length ? ` (left out: ${left.join(", ")})` : ""}.`]
  }
  const lines = [
    `Coordination overhead over ${o.workflows} workflows (wall ${duration(o.wallSeconds)}, some agent working ${duration(o.coveredSeconds)}, agents' time summed ${duration(o.agentSeconds)}):`,
    figureLine("  time no agent worked (wall − union of agents' active time) / wall", o.coverage),
    figureLine("  original formula (wall − Σ agent time) / wall", o.original) +
      (o.original.negativeWorkflows ? ` — below zero in ${o.original.negativeWorkflows} workflow(s): agents worked at the same time` : ""),
  ]
  for (const [name, k] of [["team runs", o.byKind.team], ["tasks", o.byKind.task]] as const)
    if (k.workflows) lines.push(`  ${name}: ${k.workflows} · ${pctText(k.coverage.overheadPct)} (${k.coverage.band}) · original formula ${pctText(k.original.overheadPct)}`)
  lines.push(`  ${BANDS_LINE}`)
  const t = o.tokens
  lines.push(
    t.totalTokens
      ? `Tokens: ${t.coordinationTokens.toLocaleString("en")} of ${t.totalTokens.toLocaleString("en")} (${pctText(t.coordinationPct)}) went to coordination (${t.deliveryTurns.toLocaleString("en")} delivery turn(s) of ${t.turns.toLocaleString("en")}); work ${t.workTokens.toLocaleString("en")}`
      : "Tokens: none recorded",
  )
  if (o.recent.length) {
    lines.push("Latest workflows:")
    for (const r of o.recent)
      lines.push(
        `  ${r.completed_at.slice(0, 16).replace("T", " ")}  ${r.workflow_id}  ${r.team ? `team ${r.team}` : "task"}  ${r.success ? "ok    " : "failed"}  wall ${duration(r.wallSeconds)} · working ${duration(r.coveredSeconds)}${r.kind === "team" ? ` · 2+ at once ${duration(r.parallelSeconds)}` : ""} · overhead ${pctText(r.overheadPct)} (original ${pctText(r.originalOverheadPct)})`,
      )
  }
  const left = Object.entries(o.skipped).filter(([, n]) => n).map(([k, n]) => `${n} ${k.replace(/[A-Z]/g, (c) => " " + c.toLowerCase())}`)
  if (left.length) lines.push(`Left out: ${left.join(", ")}`)
  return lines
}

export function formatTeams(t: TeamStats): string[] {
  if (!t.teams.length) return ["No team runs recorded yet."]
  const head = `${"team".padEnd(22)} ${"pattern".padEnd(12)} ${"runs".padStart(5)} ${"success".padStart(8)} ${"avg time".padStart(9)} ${"agents".padStart(6)} ${"2+ at once".padStart(10)} ${"overhead".padStart(8)}`
  return [
    head,
    ...t.teams.map(
      (r) =>
        `${r.team.padEnd(22)} ${(r.pattern ?? "").padEnd(12)} ${String(r.runs).padStart(5)} ${asPct(r.successRate).padStart(8)} ${duration(r.avgDurationSeconds).padStart(9)} ${(r.avgAgents?.toFixed(1) ?? "–").padStart(6)} ${pctText(r.utilizationPct).padStart(10)} ${pctText(r.overheadPct).padStart(8)}`,
    ),
    "2+ at once: share of a run's wall time during which at least two members worked at the same time (utilization).",
  ]
}

export function formatAgents(a: AgentStats): string[] {
  if (!a.agents.length) return ["No agent invocations recorded yet."]
  return [
    `${"agent".padEnd(22)} ${"tasks".padStart(6)} ${"success".padStart(8)} ${"avg time".padStart(9)} ${"tokens".padStart(11)} ${"cost".padStart(8)}  last`,
    ...a.agents.map(
      (r) =>
        `${r.agent.padEnd(22)} ${String(r.tasks).padStart(6)} ${asPct(r.successRate).padStart(8)} ${duration(r.avgDurationSeconds).padStart(9)} ${r.tokens.toLocaleString("en").padStart(11)} ${r.cost.toFixed(2).padStart(8)}  ${r.lastAt.slice(0, 10)}`,
    ),
  ]
}

export function formatTrend(t: Trend): string[] {
  const win = (w: Trend["recent"]) => `${w.tasks} task(s), success ${asPct(w.successRate)}, avg ${duration(w.avgDurationSeconds)}`
  const change = t.changePoints === null ? "" : ` (${t.changePoints > 0 ? "+" : ""}${t.changePoints.toFixed(1)} points)`
  return [
    `${t.agent} over the last ${t.days} days: ${t.trend}${t.trend === "not enough data" ? "" : change}`,
    `  ${"last 7 days:".padEnd(22)}${win(t.recent)}`,
    `  ${`the ${t.days - 7} days before:`.padEnd(22)}${win(t.prior)}`,
    `  ${t.reason}`,
  ]
}

export function formatBestAgent(r: BestAgentResult): string[] {
  const q = `"${r.query.task}"${r.query.domain ? ` (domain ${r.query.domain})` : ""}`
  const lines: string[] = []
  const describe = (c: Candidate, indent: string) => {
    const out = [
      `${indent}success ${asPct(c.successRate)} on ${c.experience} similar task(s) (recency-weighted ${asPct(c.weightedSuccessRate)}), avg ${duration(c.avgDurationSeconds)}, ${c.totalTasks} task(s) in all, trend ${c.trend}`,
    ]
    const kw = c.evidence.keywords.map((k) => `${k.keyword} (${k.tasks} task(s), ${k.succeeded} ok)`)
    const why = [kw.length ? `past tasks about ${kw.join(", ")}` : "", c.evidence.profileWords.length ? `profile says ${c.evidence.profileWords.join(", ")}` : ""].filter(Boolean)
    out.push(`${indent}why: ${why.join("; ") || "–"}${c.fit.domain === false ? " · nothing of it mentions the domain (fit halved)" : ""}`)
    for (const t of c.evidence.tasks) out.push(`${indent}  ${t.ended_at.slice(0, 16).replace("T", " ")}  ${t.task_id}  ${t.outcome.padEnd(9)} [${t.matched.join(", ")}]`)
    return out
  }
  if (r.best) {
    lines.push(`Best agent for ${q}: ${r.best.agent} — confidence ${asPct(r.best.confidence)}`)
    lines.push(...describe(r.best, "  "))
  } else {
    lines.push(`For ${q}: ${r.message}.`)
    if (r.nearest?.length) lines.push(`  nearest below ${asPct(r.query.minConfidence)} confidence: ${r.nearest.map((c) => `${c.agent} ${asPct(c.confidence)}`).join(", ")}`)
  }
  if (r.query.unknownWords.length) lines.push(`  words no past task or profile knows (not used): ${r.query.unknownWords.join(", ")}`)
  if (r.candidates.length > 1 || (r.candidates.length === 1 && !r.best)) {
    lines.push(`All candidates (${r.candidates.length}), minimum confidence ${asPct(r.query.minConfidence)}:`)
    r.candidates.forEach((c, i) => {
      lines.push(`  ${String(i + 1).padStart(2)}. ${c.agent.padEnd(22)} ${asPct(c.confidence).padStart(4)}${c.qualifies ? "" : " (below)"}  ${c.experience} similar task(s), success ${asPct(c.successRate)}, trend ${c.trend}`)
    })
  }
  if (!r.tasksSeen) lines.push("  (no task history yet: only profiles were compared)")
  return lines
}

const GLOBAL = {
  dir: { type: "string" as const, short: "C", description: "a folder of the project (default: the current folder); nso looks upward for opencode.json(c) or .opencode/" },
  json: { type: "boolean" as const, description: "machine-readable output" },
  help: { type: "boolean" as const, short: "h", description: "show help" },
}

function help(name?: string): string {
  if (name && commands[name]) {
    const c = commands[name]!
    const opts = { ...c.options, ...GLOBAL }
    return [`${c.summary}\n`, `Usage: ${c.usage}\n`, "Options:", ...Object.entries(opts).map(([k, o]) => `  --${k}${"short" in o && o.short ? `, -${o.short}` : ""}  ${o.description}`)].join("\n")
  }
  return [
    "nso — NSO for OpenCode, from the command line\n",
    "Usage: nso <command> [options]\n",
    "Commands:",
    ...Object.entries(commands).map(([k, c]) => `  ${k.padEnd(10)} ${c.summary}`),
    "\nThe project is the nearest folder, at or above the current one (or --dir), with opencode.json,",
    "opencode.jsonc or .opencode/, up to the git root; NSO's state is in its .opencode/nso/.",
    "\nRun `nso <command> --help` for a command's options.",
  ].join("\n")
}

export async function main(
  argv: string[],
  out: (s: string) => void = (s) => process.stdout.write(s + "\n"),
  err: (s: string) => void = (s) => process.stderr.write(s + "\n"),
): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === "--help" || name === "-h" || name === "help") {
    out(help(rest[0]))
    return name ? 0 : 1
  }
  const cmd = commands[name]
  if (!cmd) {
    err(`nso: unknown command "${name}". Commands: ${Object.keys(commands).join(", ")}. Try \`nso --help\`.`)
    return 2
  }
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: { ...cmd.options, ...GLOBAL }, allowPositionals: true, strict: true })
  } catch (e) {
    err(`nso ${name}: ${(e as Error).message}. Try \`nso ${name} --help\`.`)
    return 2
  }
  if (parsed.values.help) {
    out(help(name))
    return 0
  }
  const json = !!parsed.values.json
  const fail = (msg: string, code: number) => {
    if (json) out(JSON.stringify({ error: msg }))
    else err(`nso ${name}: ${msg}`)
    return code
  }
  let project: Project
  try {
    project = findProject(String(parsed.values.dir ?? process.cwd()))
  } catch (e) {
    if (e instanceof ProjectError) return fail(e.message, e.exitCode)
    throw e
  }
  const nso = findNso(project)
  const { options, problems } = await loadOptions(deps, project.dir, nso.options)
  if (!json) for (const p of problems) err(`nso: warning: invalid NSO option, this setting is ignored: ${p}`)
  let seen: ServerSeen | undefined
  const ctx: Ctx = {
    dir: project.dir,
    project,
    nso,
    server: () => (seen ??= serverFor(join(project.dir, options.stateDir, "journal.jsonl"))),
    options,
    optionProblems: problems,
    stateDir: options.stateDir,
    contextDir: options.init.contextDir,
    json,
    out,
    err,
  }
  if (cmd.needsState !== false && !existsSync(join(ctx.dir, ctx.stateDir))) return fail(noState(ctx), 1)
  try {
    const result = await cmd.run(ctx, parsed)
    if (ctx.json) out(JSON.stringify(result, null, 2))
    return ctx.exitCode ?? 0
  } catch (e) {
    return fail(e instanceof Error ? e.message : String(e), e instanceof UsageError || e instanceof TypeError ? 2 : 1)
  }
}

/** The file this process was started with, symlinks resolved (`npx nso` runs node_modules/.bin/nso). */
function invokedAs(): string | undefined {
  try {
    return process.argv[1] ? realpathSync(process.argv[1]) : undefined
  } catch {
    return undefined
  }
}

// Run when executed directly (not when imported by tests).
const invoked = invokedAs()
if (invoked && import.meta.url === pathToFileURL(invoked).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code))
}
