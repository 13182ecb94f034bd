import { join } from "node:path"
import type { Deps } from "../deps.js"
import type { Options } from "../options.js"
import { TEMPLATES_DIR } from "../paths.js"
import { KnowledgeIndex } from "./knowledge.js"
import { promptSuffix, type LoadedProfiles } from "./load.js"
import { commandVerdict, toolVerdict, type Profile, type ToolEffect } from "./profiles.js"

/** An agent background work can go to: its concurrency key and whether it may delegate in turn. */
export interface AgentInfo {
  /** Concurrency key: the agent's model, else "default". */
  key: string
  delegates: boolean
  /** The profile's own budgets, over the `tasks` options. */
  maxTurns?: number
  maxTokens?: number
}

/**
 * Every agent NSO knows, as loaded from the profile layers: what each runs on, its full prompt,
 * its runbooks, and what it may not do.
 */
export class AgentCatalogue {
  readonly profiles: Map<string, Profile>
  readonly origins: LoadedProfiles["origins"]
  private knowledgeIndex: Promise<KnowledgeIndex> | undefined

  constructor(
    private readonly deps: Deps,
    private readonly projectDir: string,
    private readonly models: Options["models"],
    loaded: LoadedProfiles,
    /** Prompt templates by file name, read at start (see readTemplates). */
    private readonly templates: ReadonlyMap<string, string>,
  ) {
    this.profiles = loaded.profiles
    this.origins = loaded.origins
  }

  /** Agents background work can be delegated to (every profile that is not primary-only). */
  delegatable(): Map<string, AgentInfo> {
    const out = new Map<string, AgentInfo>()
    for (const [name, p] of this.profiles) if (p.mode !== "primary") out.set(name, { key: this.modelOf(p) ?? "default", delegates: p.delegates, ...(p.max_turns ? { maxTurns: p.max_turns } : {}), ...(p.max_tokens ? { maxTokens: p.max_tokens } : {}) })
    return out
  }

  /** A profile's model: a `provider/model` as given, a tier through the `models` option, else OpenCode's default. */
  modelOf(p: Profile): string | undefined {
    if (!p.model) return undefined
    if (p.model === "fast" || p.model === "strong") return this.models[p.model]
    return p.model
  }

  /** The full prompt of a profile: its template (or inline text) plus style and escalation guidance. */
  promptOf(p: Profile): string {
    const base = /^[\w./-]+\.md$/.test(p.prompt) ? (this.templates.get(p.prompt) ?? `(missing prompt template ${p.prompt})`) : p.prompt
    return `${base}\n\n${promptSuffix(p)}`
  }

  /** The runbook index, read on first use rather than at plugin start. */
  knowledge(): Promise<KnowledgeIndex> {
    this.knowledgeIndex ??= KnowledgeIndex.build(this.deps, this.projectDir, this.profiles)
    return this.knowledgeIndex
  }

  /** NSO's own check of a profile's tool rules: the refusal, written for the model, or undefined. */
  refuse(agent: string | undefined, call: { name: string; effect?: ToolEffect }): string | undefined {
    const p = agent ? this.profiles.get(agent) : undefined
    if (!p) return undefined
    const v = toolVerdict(p, call)
    if (v.ok) return undefined
    return `NSO refused ${call.name}: the ${agent} agent may not use it — ${v.why}. Do not retry it. Continue with the tools you have, or report what needs doing so an agent that may do it can be given the task.`
  }

  /** NSO's own check of a command an agent wants to run as a background job: the refusal, or undefined. */
  refuseCommand(agent: string | undefined, command: string): string | undefined {
    const p = agent ? this.profiles.get(agent) : undefined
    if (!p) return undefined
    const v = commandVerdict(p, command)
    if (v.ok) return undefined
    return `NSO refused the job: the ${agent} agent may not run it — ${v.why}. Do not retry it. Report what needs running so an agent that may run commands can be given it.`
  }
}

/**
 * Reads the shipped prompt templates NSO needs (its own headers and every profile's prompt file)
 * once, at start, so nothing later touches the disk to build a prompt.
 */
export async function readTemplates(deps: Pick<Deps, "fs" | "log">, names: Iterable<string>): Promise<Map<string, string>> {
  const out = new Map<string, string>()
  for (const name of new Set(names)) {
    if (!/^[\w./-]+\.md$/.test(name)) continue
    try {
      out.set(name, (await deps.fs.readFile(join(TEMPLATES_DIR, name), "utf8")).trim())
    } catch (err) {
      deps.log.log("error", `prompt template ${name} cannot be read`, { error: String(err) })
    }
  }
  return out
}
