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
  })
  .strict()
  .prefault({})
export type TaskOptions = z.infer<typeof TaskOptions>

export const KnowledgeOptions = z
  .object({
    budgetChars: z.number().int().positive().default(6_000).describe("Most characters of matching runbooks added to an agent's system prompt"),
  })
  .strict()
  .prefault({})

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
    /** Agent profiles to add or override (name → profile fields), over config/agents and .opencode/nso/agents. */
    agents: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    /** Model tiers profiles may name instead of a model, e.g. `{ fast: "anthropic/claude-haiku-4-5" }`. */
    models: z.object({ fast: z.string().optional(), strong: z.string().optional() }).strict().default({}),
    knowledge: KnowledgeOptions,
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
  /** One line per rejected layer: origin, field path, problem. Rejected layers are ignored. */
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

function problemsOf(error: z.ZodError, origin: string): string[] {
  return error.issues.map((i) => `${origin}: ${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`)
}

/**
 * Merges the layers in order. A layer that makes the options invalid is left out and reported,
 * so one bad file never takes NSO down; the others still apply.
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
    const next = mergeLayers(merged, layer.value)
    const r = Options.safeParse(next)
    if (r.success) merged = next
    else problems.push(...problemsOf(r.error, layer.origin))
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
      problems.push(`${path}: (file): not valid YAML: ${(err as Error).message.split("\n")[0]}`)
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
