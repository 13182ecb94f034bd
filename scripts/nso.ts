#!/usr/bin/env node
/**
 * `nso`: NSO from the command line, for a person or a script. Human output by default, `--json`
 * for scripts, `--help` everywhere; exits non-zero on error.
 */
import { readFileSync } from "node:fs"
import { join, relative, resolve } from "node:path"
import { parseArgs } from "node:util"
import { createDeps } from "../plugin/deps.js"
import { Journal } from "../plugin/journal/journal.js"
import { nsoReducer, type LiveState } from "../plugin/journal/state.js"
import { contextPath, formatContext, readContext, updateContext } from "../plugin/messaging/project-context.js"
import { loadOptions, type Options } from "../plugin/options.js"
import { CONFIG_DIR, PACKAGE_ROOT } from "../plugin/paths.js"
import { definedIn, loadProfiles } from "../plugin/agents/load.js"
import { TERMINAL_TASK_STATUSES, type JournalEvent } from "../plugin/protocol.js"
import { taskLine } from "../plugin/tasks/format.js"

export class UsageError extends Error {}

interface Ctx {
  dir: string
  options: Options
  stateDir: string
  contextDir: string
  json: boolean
  out: (s: string) => void
}

interface Command {
  summary: string
  usage: string
  options?: Record<string, { type: "string" | "boolean"; short?: string; description: string }>
  run(ctx: Ctx, args: { values: Record<string, unknown>; positionals: string[] }): Promise<unknown>
}

const deps = createDeps()

/** The NSO options in opencode.json's plugin entry, if any (the CLI reads them itself). */
function inlineOptions(dir: string): unknown {
  try {
    const cfg = JSON.parse(readFileSync(join(dir, "opencode.json"), "utf8")) as { plugin?: unknown[] }
    const entry = (cfg.plugin ?? []).find((p) => Array.isArray(p) && typeof p[0] === "string" && /nso/.test(p[0]))
    return Array.isArray(entry) ? entry[1] : undefined
  } catch {
    return undefined
  }
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

const commands: Record<string, Command> = {
  status: {
    summary: "What NSO holds for this project: tasks, pending messages, questions, sessions",
    usage: "nso status [--dir <project>] [--json]",
    async run(ctx) {
      const { state: s, report } = await state(ctx)
      const tasks = [...s.tasks.values()]
      const byStatus: Record<string, number> = {}
      for (const t of tasks) byStatus[t.status] = (byStatus[t.status] ?? 0) + 1
      const pending = [...s.pending.values()]
      const open = [...s.questions.values()].filter((q) => q.status === "open")
      const inits = readLines(join(ctx.dir, ctx.stateDir, "init.log"))
      const context = await readContext(deps, contextPath(ctx.dir, ctx.stateDir))
      const data = {
        project: ctx.dir,
        journal: { records: report.records, snapshot: report.snapshot, corrupt: report.corrupt, torn: report.torn },
        tasks: { total: tasks.length, active: tasks.filter((t) => !TERMINAL_TASK_STATUSES.has(t.status)).length, byStatus },
        pendingMessages: pending.length,
        inDoubtDeliveries: s.inDoubt.size,
        openQuestions: open.map((q) => ({ id: q.id, from: q.from, text: q.text })),
        sessionsInitialized: s.initialized.size,
        lastInit: inits.at(-1),
        context: { goal: context.goal, status: context.status },
      }
      if (ctx.json) return data
      const lines = [
        `Project: ${ctx.dir}`,
        `Journal: ${report.records} records${report.snapshot ? " + snapshot" : ""}${report.corrupt || report.torn ? ` (${report.corrupt} corrupt, ${report.torn} torn lines skipped)` : ""}`,
        `Tasks: ${tasks.length} (${Object.entries(byStatus).map(([k, v]) => `${v} ${k}`).join(", ") || "none"})`,
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
      for (const t of list) ctx.out(taskLine(t, now, open.find((q) => q.taskId === t.id)))
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
      const q = s.questions.get(id)
      if (!q) throw new UsageError(`no question "${id}". Open: ${[...s.questions.values()].filter((x) => x.status === "open").map((x) => x.id).join(", ") || "none"}`)
      if (q.status === "answered") throw new UsageError(`question ${id} was already answered (${q.answeredBy}: ${q.answer})`)
      const answer = words.join(" ")
      // The server running the task follows the journal and delivers the answer.
      await appendOne(ctx, { type: "question.answered", id, answer, by: "user (cli)" })
      if (ctx.json) return { id, answer, recorded: true }
      ctx.out(`Answer to ${id} recorded; the running OpenCode server passes it to ${q.from}.`)
      return undefined
    },
  },
  cancel: {
    summary: "Cancel a background task and everything it started: nso cancel <task id>",
    usage: "nso cancel <task id> [--json]",
    async run(ctx, { positionals }) {
      const [id] = positionals
      if (!id) throw new UsageError("give the task id, e.g. nso cancel tsk_abc123 (see nso tasks)")
      const { state: s } = await state(ctx)
      const t = s.tasks.get(id)
      if (!t) throw new UsageError(`no task "${id}" (see nso tasks)`)
      if (TERMINAL_TASK_STATUSES.has(t.status)) throw new UsageError(`task ${id} already ended ${t.status}`)
      await appendOne(ctx, { type: "task.cancel_requested", id, by: "user (cli)" })
      if (ctx.json) return { id, requested: true }
      ctx.out(`Cancellation of ${id} requested; the running OpenCode server stops it and everything it started.`)
      return undefined
    },
  },
  agents: {
    summary: "Every agent profile: role, model, permissions, specialization, where it was defined",
    usage: "nso agents [--json]",
    async run(ctx) {
      const opts = ctx.options
      const loaded = await loadProfiles(deps, { shipped: join(CONFIG_DIR, "agents"), project: join(ctx.dir, ctx.stateDir, "agents") }, opts.agents)
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
        const where = definedIn(loaded.origins.get(p.name) ?? {}).map((o) =>
          o.layer === "shipped" ? `(nso) ${relative(PACKAGE_ROOT, o.where)}` : o.layer === "project" ? relative(ctx.dir, o.where) : o.where,
        )
        return { name: p.name, role: p.role, mode: p.mode, model, permissions: perms, specialization: p.specialization, description: p.description, definedIn: where, knowledge: p.knowledge.map((k) => k.folder) }
      })
      if (ctx.json) return { agents: rows, problems: loaded.problems }
      for (const r of rows)
        ctx.out(`${r.name.padEnd(22)} ${r.role.padEnd(11)} ${r.mode.padEnd(8)} model ${r.model}\n${"".padEnd(23)}${r.specialization || r.description}${r.permissions.length ? ` · ${r.permissions.join(" ")}` : ""}\n${"".padEnd(23)}from ${r.definedIn.join(" + ")}`)
      for (const p of loaded.problems) ctx.out(`problem: ${p}`)
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
}

const GLOBAL = {
  dir: { type: "string" as const, short: "C", description: "the project folder (default: current folder)" },
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
    "\nRun `nso <command> --help` for a command's options.",
  ].join("\n")
}

export async function main(argv: string[], out: (s: string) => void = (s) => process.stdout.write(s + "\n")): Promise<number> {
  const [name, ...rest] = argv
  if (!name || name === "--help" || name === "-h" || name === "help") {
    out(help(rest[0]))
    return name ? 0 : 1
  }
  const cmd = commands[name]
  if (!cmd) {
    process.stderr.write(`nso: unknown command "${name}". Commands: ${Object.keys(commands).join(", ")}. Try \`nso --help\`.\n`)
    return 2
  }
  let parsed
  try {
    parsed = parseArgs({ args: rest, options: { ...cmd.options, ...GLOBAL }, allowPositionals: true, strict: true })
  } catch (err) {
    process.stderr.write(`nso ${name}: ${(err as Error).message}. Try \`nso ${name} --help\`.\n`)
    return 2
  }
  if (parsed.values.help) {
    out(help(name))
    return 0
  }
  const dir = resolve(String(parsed.values.dir ?? process.cwd()))
  const { options } = await loadOptions(deps, dir, inlineOptions(dir))
  const ctx: Ctx = { dir, options, stateDir: options.stateDir, contextDir: options.init.contextDir, json: !!parsed.values.json, out }
  try {
    const result = await cmd.run(ctx, parsed)
    if (ctx.json) out(JSON.stringify(result, null, 2))
    return 0
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err)
    if (ctx.json) out(JSON.stringify({ error: msg }))
    else process.stderr.write(`nso ${name}: ${msg}\n`)
    return err instanceof UsageError || err instanceof TypeError ? 2 : 1
  }
}

// Run when executed directly (not when imported by tests).
if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code))
}
