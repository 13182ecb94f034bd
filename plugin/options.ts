import { join } from "node:path"
import { parse as parseYaml } from "yaml"
import { z } from "zod"
import type { Deps } from "./deps.js"
import { CONFIG_DIR } from "./paths.js"
import { IntentRule } from "./protocol.js"

/**
 * Every NSO option, with its default and unit, in one schema. `opencode.json` plugin options,
 * `.opencode/nso.yaml` and the shipped `config/defaults.yaml` are all validated by it, and the
 * JSON Schema for editors (`dist/options.schema.json`) is generated from it.
 */

const ms = (def: number, what: string) => z.number().int().nonnegative().default(def).describe(`${what} (milliseconds)`)

export const BufferOptions = z
  .object({
    pauseMs: ms(2_000, "How long the Oracle's session must be idle and the user quiet before agent messages are delivered"),
    maxHoldMs: ms(60_000, "A high-priority message held this long is delivered at the next idle moment, pause or not"),
    maxSize: z.number().int().positive().default(1_000).describe("Most messages held per session before low-value ones are dropped"),
    lowTtlMs: ms(10 * 60_000, "Lifetime of an undelivered low-priority message"),
    coalesceMs: ms(
      1_000,
      "While other tasks still run, results that need no reply are gathered this long after the first of them and delivered together",
    ),
    maxInlineChars: z
      .number()
      .int()
      .positive()
      .default(4_000)
      .describe("Longest result text delivered inline; longer results are cut with a pointer to the tasks tool (characters)"),
  })
  .strict()
  .prefault({})
export type BufferOptions = z.infer<typeof BufferOptions>

export const JournalOptions = z
  .object({
    maxBytes: z.number().int().min(1024).default(8 * 1024 * 1024).describe("Compact the journal past this size (bytes)"),
    fsync: z.boolean().default(true).describe("Sync each group-committed batch to disk before acknowledging it"),
  })
  .strict()
  .prefault({})
export type JournalOptions = z.infer<typeof JournalOptions>

export const RouterOptions = z
  .object({
    intents: z.array(IntentRule).default([]).describe("Keyword/regex rules that suggest an agent for a user message"),
  })
  .strict()
  .prefault({})
export type RouterOptions = z.infer<typeof RouterOptions>

export const InitOptions = z
  .object({
    contextDir: z.string().default(".opencode/context").describe("Project memory folder, relative to the project"),
    budgetChars: z
      .number()
      .int()
      .positive()
      .default(12_000)
      .describe("Most characters of memory files added to a root session's system prompt"),
    createMissing: z.boolean().default(true).describe("Create missing memory files from templates"),
    sweepDelayMs: ms(500, "Delay before the start-up sweep that initialises sessions that already existed"),
  })
  .strict()
  .prefault({})
export type InitOptions = z.infer<typeof InitOptions>

export const TaskOptions = z
  .object({
    concurrency: z.number().int().positive().default(3).describe("Background tasks running at once per model (or provider)"),
    maxDepth: z.number().int().min(1).default(3).describe("How deep delegation may nest (a task delegating is depth 2)"),
    stallMs: ms(10 * 60_000, "A running task with no activity this long is reported as stalled"),
    killStalled: z.boolean().default(false).describe("Cancel a stalled task instead of only reporting it"),
    maxRuntimeMs: ms(0, "Wall-clock limit per task; 0 means none"),
    reconcileMs: ms(30_000, "Interval of the background sweep that repairs lost completion events"),
    closePolicy: z
      .enum(["kill", "persist", "ask"])
      .default("ask")
      .describe("What to do with tasks interrupted by a restart: cancel them, resume them, or ask the user"),
    questionTimeoutMs: ms(15 * 60_000, "How long ask_user waits for an answer by default"),
    maxTokens: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("Most tokens (input, output, reasoning and cached) one task's own model turns may spend; at the limit it is stopped and its partial result delivered. 0 = no limit. A profile's max_tokens overrides it; a delegate call may only lower it"),
    maxTurns: z
      .number()
      .int()
      .min(0)
      .default(0)
      .describe("Most model turns (assistant messages) one task may take; at the limit it is stopped and its partial result delivered. 0 = no limit. A profile's max_turns overrides it; a delegate call may only lower it"),
    retry: z
      .object({
        attempts: z.number().int().min(0).default(2).describe("Automatic retries of a task that failed for a transient reason (provider error, rate limit, network); 0 = never"),
        backoffMs: ms(5_000, "Wait before the first retry; doubled for each next one"),
        maxBackoffMs: ms(60_000, "Longest wait between retries"),
      })
      .strict()
      .prefault({})
      .describe("Retries after transient failures; never after a failure the model itself reported"),
    mode: z
      .enum(["async", "sync"])
      .default("async")
      .describe("async: delegate returns at once and the result arrives later; sync: delegate waits for the result (at most syncWaitMs) and returns it in the tool call"),
    syncWaitMs: ms(10 * 60_000, "Longest a waiting delegate (wait: true, or mode sync) blocks; past it the task goes on in the background and its result arrives as usual"),
  })
  .strict()
  .prefault({})
export type TaskOptions = z.infer<typeof TaskOptions>

export const MessagingOptions = z
  .object({
    maxHops: z.number().int().min(1).default(6).describe("Most hops in one thread of agent messages (each reply is one); past it the thread stops and is escalated"),
    pairLimit: z.number().int().min(1).default(12).describe("Most messages one agent may send another within pairWindowMs; past it they are dropped and escalated"),
    pairWindowMs: ms(60_000, "Window of the per-pair rate limit"),
    repeatWindowMs: ms(5 * 60_000, "The same text from the same sender to the same recipient within this window is dropped as a repeat"),
    workflowBudget: z.number().int().min(1).default(200).describe("Most agent messages per workflow (a team run, or the tasks of one Oracle session); past it messages are dropped and escalated"),
    boardDigestChars: z.number().int().min(0).default(1_200).describe("Most characters of the board digest added to a background agent's system prompt"),
    auditTextChars: z.number().int().min(0).default(500).describe("Most characters of a message's text written to the audit log (messages.jsonl)"),
  })
  .strict()
  .prefault({})
export type MessagingOptions = z.infer<typeof MessagingOptions>

export const JobOptions = z
  .object({
    defaultTimeoutMs: ms(60 * 60_000, "Time limit of a background job started without timeout_ms; 0 means none"),
    maxRunning: z.number().int().positive().default(4).describe("Most background jobs running at once in this project; job_start refuses beyond"),
    tailLines: z.number().int().positive().default(20).describe("Last lines of a job's output shown in its completion and in tasks (lines)"),
    killGraceMs: ms(3_000, "Between SIGTERM and SIGKILL when a job is cancelled or runs out of time"),
  })
  .strict()
  .prefault({})
export type JobOptions = z.infer<typeof JobOptions>

export const KnowledgeOptions = z
  .object({
    budgetChars: z.number().int().positive().default(6_000).describe("Most characters of matching runbooks added to an agent's system prompt"),
  })
  .strict()
  .prefault({})

export const TelemetryOptions = z
  .object({
    otlp: z
      .object({
        endpoint: z.url({ protocol: /^https?$/ }).describe("OTLP/HTTP traces URL spans are sent to as JSON, e.g. http://127.0.0.1:4318/v1/traces"),
        headers: z.record(z.string(), z.string()).optional().describe("HTTP headers sent with every export (e.g. an API key of the collector)"),
      })
      .strict()
      .optional()
      .describe("Export OpenTelemetry traces (GenAI conventions: invoke_workflow, invoke_agent, execute_tool spans) over OTLP/HTTP; off when absent"),
    fileMaxBytes: z
      .number()
      .int()
      .min(1024)
      .default(16 * 1024 * 1024)
      .describe("Rotate each telemetry file (workflow_events.jsonl, agent_invocations.jsonl) past this size (bytes)"),
  })
  .strict()
  .prefault({})
export type TelemetryOptions = z.infer<typeof TelemetryOptions>

export const DashboardOptions = z
  .object({
    enabled: z.boolean().default(true).describe("Serve the live dashboard on 127.0.0.1 while OpenCode runs (false: no server)"),
    port: z.number().int().min(0).max(65_535).default(0).describe("Port of the dashboard; 0 picks any free port"),
  })
  .strict()
  .prefault({})
export type DashboardOptions = z.infer<typeof DashboardOptions>

export const Options = z
  .object({
    $schema: z.string().optional(),
    stateDir: z.string().default(".opencode/nso").describe("Where NSO keeps its journal and logs, relative to the project"),
    logLevel: z.enum(["debug", "info", "warn", "error"]).default("warn"),
    defaultAgent: z
      .string()
      .default("oracle")
      .describe('The agent a new prompt goes to unless opencode.json sets default_agent; "" leaves OpenCode\'s default'),
    buffer: BufferOptions,
    journal: JournalOptions,
    router: RouterOptions,
    init: InitOptions,
    tasks: TaskOptions,
    messaging: MessagingOptions,
    /** Agent profiles to add or override (name → profile fields), over config/agents and .opencode/nso/agents. */
    agents: z
      .record(z.string(), z.record(z.string(), z.unknown()))
      .default({})
      .describe("Agent profiles to add or override (name → profile fields); over every folder of profiles, field by field"),
    /** Teams to add or override (name → team fields), over config/teams and .opencode/nso/teams. */
    teams: z
      .record(z.string(), z.record(z.string(), z.unknown()))
      .default({})
      .describe("Teams to add or override (name → team fields); over every folder of teams, field by field"),
    agentsPaths: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Shared folders of agent profiles, used by several projects; later ones win. Over the shipped profiles and $XDG_CONFIG_HOME/opencode/nso/agents, under the project's .opencode/nso/agents. A relative path is relative to the project, ~ is the home folder",
      ),
    teamsPaths: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "Shared folders of teams, used by several projects; later ones win. Over the shipped teams and $XDG_CONFIG_HOME/opencode/nso/teams, under the project's .opencode/nso/teams. A relative path is relative to the project, ~ is the home folder",
      ),
    /** Model tiers profiles may name instead of a model, e.g. `{ fast: "anthropic/claude-haiku-4-5" }`. */
    models: z.object({ fast: z.string().optional(), strong: z.string().optional() }).strict().default({}),
    knowledge: KnowledgeOptions,
    telemetry: TelemetryOptions,
    dashboard: DashboardOptions,
    jobs: JobOptions,
  })
  .strict()
export type Options = z.infer<typeof Options>
/** What a person writes: every field optional. */
export type OptionsInput = z.input<typeof Options>

export const DEFAULT_OPTIONS: Options = Options.parse({})

// ---------------------------------------------------------------------------------------------
// Loading: shipped defaults < .opencode/nso.yaml < opencode.json plugin options.

export interface OptionsLayer {
  /** Where it came from, for error messages: a file path or `opencode.json plugin options`. */
  origin: string
  value: unknown
}

export interface LoadedOptions {
  options: Options
  /** One line per rejected setting: origin, field path, problem. Only that setting is ignored. */
  problems: string[]
}

export function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v)
}

/** Later wins, field by field; arrays are replaced, not concatenated. */
export function mergeLayers(a: unknown, b: unknown): unknown {
  if (!isPlainObject(a) || !isPlainObject(b)) return b === undefined ? a : b
  const out: Record<string, unknown> = { ...a }
  for (const [k, v] of Object.entries(b)) out[k] = mergeLayers(a[k], v)
  return out
}

/** Removes the setting at `path` from a layer; returns whether anything was there to remove. */
function dropAt(layer: Record<string, unknown>, path: readonly PropertyKey[]): boolean {
  let cur: unknown = layer
  for (let i = 0; i < path.length - 1; i++) {
    if (!isPlainObject(cur) && !Array.isArray(cur)) return false
    cur = (cur as Record<PropertyKey, unknown>)[path[i] as string]
  }
  const last = path[path.length - 1] as string
  if (Array.isArray(cur)) {
    // An array is one setting (arrays replace, not merge): drop the whole array.
    return dropAt(layer, path.slice(0, -1))
  }
  if (!isPlainObject(cur) || !(last in cur)) return false
  delete cur[last]
  return true
}

/**
 * Merges the layers in order. A setting that makes the options invalid is dropped from its
 * layer and reported (file, field, problem, what to do); every other setting of that layer, and
 * every other layer, still applies. One typo never takes the rest of the options with it.
 */
export function resolveOptions(layers: readonly OptionsLayer[]): LoadedOptions {
  const problems: string[] = []
  let merged: unknown = {}
  for (const layer of layers) {
    if (layer.value === undefined || layer.value === null) continue
    if (!isPlainObject(layer.value)) {
      problems.push(`${layer.origin}: (root): expected an object of NSO options, got ${Array.isArray(layer.value) ? "an array" : typeof layer.value}`)
      continue
    }
    const own = structuredClone(layer.value)
    // Each round drops at least one setting, so this ends; the bound is a guard.
    for (let round = 0; round < 100; round++) {
      const next = mergeLayers(merged, own)
      const r = Options.safeParse(next)
      if (r.success) {
        merged = next
        break
      }
      let dropped = false
      for (const issue of r.error.issues) {
        const keys = issue.code === "unrecognized_keys" ? issue.keys.map((k) => [...issue.path, k]) : [issue.path]
        for (const path of keys) {
          const where = path.length ? path.join(".") : "(root)"
          if (path.length && dropAt(own, path)) {
            dropped = true
            problems.push(`${layer.origin}: ${where}: ${issue.code === "unrecognized_keys" ? "not an NSO option (check the spelling)" : issue.message}`)
          }
        }
      }
      if (!dropped) {
        // Nothing in this layer to blame for the issue: leave the whole layer out.
        problems.push(...r.error.issues.map((i) => `${layer.origin}: ${i.path.length ? i.path.join(".") : "(root)"}: ${i.message} (the whole layer is ignored)`))
        break
      }
    }
  }
  return { options: Options.parse(merged), problems }
}

/**
 * The options in force for a project: `config/defaults.yaml` < `.opencode/nso.yaml` < the plugin
 * options from opencode.json. A file that cannot be read as YAML is reported and skipped.
 */
export async function loadOptions(deps: Pick<Deps, "fs">, projectDir: string, inline: unknown): Promise<LoadedOptions> {
  const problems: string[] = []
  const read = async (path: string): Promise<OptionsLayer> => {
    let text: string
    try {
      text = await deps.fs.readFile(path, "utf8")
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") problems.push(`${path}: (file): cannot be read: ${(err as Error).message}`)
      return { origin: path, value: undefined }
    }
    try {
      return { origin: path, value: parseYaml(text) ?? undefined }
    } catch (err) {
      problems.push(`${path}: ${yamlProblem(err, text)}`)
      return { origin: path, value: undefined }
    }
  }
  const hasInline = isPlainObject(inline) ? Object.keys(inline).length > 0 : inline !== undefined
  const r = resolveOptions([
    await read(join(CONFIG_DIR, "defaults.yaml")),
    await read(join(projectDir, ".opencode", "nso.yaml")),
    { origin: "opencode.json plugin options", value: hasInline ? inline : undefined },
  ])
  return { options: r.options, problems: [...problems, ...r.problems] }
}

/** A YAML error as a person can act on it: where, what is wrong, and the line as written. */
export function yamlProblem(err: unknown, text: string): string {
  const e = err as { message?: string; linePos?: { line: number; col: number }[] }
  const pos = e.linePos?.[0]
  const what = (e.message ?? String(err)).split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")
  if (!pos) return `(file): not valid YAML: ${what}`
  // The parser often notices a problem at the start of the next line: show the last line written.
  const lines = text.split(/\r?\n/)
  let n = pos.line
  while (n > 1 && !(lines[n - 1] ?? "").trim()) n--
  return `line ${n}: not valid YAML: ${what}. The line reads: ${JSON.stringify((lines[n - 1] ?? "").trim().slice(0, 120))}`
}
