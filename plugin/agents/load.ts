import { basename, extname, join } from "node:path"
import { parse as parseYaml } from "yaml"
import type { z } from "zod"
import type { Deps } from "../deps.js"
import { isPlainObject } from "../options.js"
import { Profile } from "./profiles.js"

/**
 * Profiles (and teams, see teams/load.ts) come from these places, later winning field by field:
 *   1. shipped: the package's `config/agents/*.yaml`,
 *   2. shared: the user's global `$XDG_CONFIG_HOME/opencode/nso/agents/`, then each folder of
 *      the `agentsPaths` option in order (see shared.ts for how that list is made),
 *   3. project: the project's `.opencode/nso/agents/`,
 *   4. options: the `agents` option in opencode.json.
 * In a folder: `*.yaml`, `*.yml` (one definition, a list, or `{ agents: [...] }`), or `*.md` with
 * front matter — the body is the prompt. A folder that does not exist is skipped; a file that
 * cannot be read is a problem. `tools` and `permission` merge one level deeper (a project can deny
 * one more tool without restating the rest). A layer that makes a definition invalid is reported
 * (file, field, problem) and left out; the definition falls back to the layers below it, and every
 * other one loads.
 */

/** The layers definitions come from, lowest precedence first. */
export const PROFILE_LAYERS = ["shipped", "shared", "project", "options"] as const
export type ProfileLayer = (typeof PROFILE_LAYERS)[number]

/** Where a definition came from: its layer (what precedence means) and where in it (for people). */
export interface Origin {
  layer: ProfileLayer
  /** A file path (with `#n` for the n-th definition of a list), or `opencode.json agents.<name>`. */
  where: string
  /** Shared layer only: the folder's place in the list of shared folders (a higher one wins). */
  rank?: number
}

export interface LoadedProfiles {
  profiles: Map<string, Profile>
  /**
   * Where each field of each profile came from: name → field → origin. Fields that merge one
   * level deeper also have an entry per sub-field (`permission.bash`).
   */
  origins: Map<string, Record<string, Origin>>
  problems: string[]
}

/** One layer's definition of one profile or team. */
export interface Definition {
  origin: Origin
  name: string
  fields: Record<string, unknown>
}

/** What is being loaded: how its files look and how its fields merge. */
export interface DefinitionKind {
  /** In messages: "profile", "team". */
  noun: string
  /** How a problem names one ("agent", "team"), and the option holding inline ones ("agents", "teams"). */
  label: string
  option: string
  /** A file may hold `{ <list>: [...] }`. */
  list: string
  /** Whether `*.md` files (front matter + prompt body) are read. */
  markdown: boolean
  /** Fields that merge one level deeper instead of being replaced. */
  nested: ReadonlySet<string>
}

export const PROFILE_KIND: DefinitionKind = {
  noun: "profile",
  label: "agent",
  option: "agents",
  list: "agents",
  markdown: true,
  nested: new Set(["tools", "permission"]),
}

/** The folders a kind is read from: shipped, then shared ones in order, then the project's. */
export interface DefinitionDirs {
  shipped: string
  /** Lowest precedence first (see shared.ts). */
  shared?: readonly string[]
  project: string
}

/** Splits `---` front matter from a markdown body. */
export function frontMatter(text: string): { data: unknown; body: string } {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text)
  if (!m) return { data: {}, body: text }
  return { data: parseYaml(m[1]!) ?? {}, body: m[2]! }
}

const firstLine = (err: unknown) => (err instanceof Error ? err.message : String(err)).split("\n")[0]

/**
 * Reads one folder of definition files into layers. A missing folder gives nothing; a folder or
 * file that cannot be read, or a definition without a name, is a problem.
 */
export async function readDefinitionDir(
  deps: Pick<Deps, "fs">,
  dir: string,
  at: { layer: ProfileLayer; rank?: number },
  problems: string[],
  kind: DefinitionKind,
): Promise<Definition[]> {
  let names: string[]
  try {
    names = (await deps.fs.readdir(dir)).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code !== "ENOENT") problems.push(`${dir}: (folder): cannot be read${code === "ENOTDIR" ? ": it is not a folder" : `: ${firstLine(err)}`}`)
    return []
  }
  const out: Definition[] = []
  const exts = kind.markdown ? [".yaml", ".yml", ".md"] : [".yaml", ".yml"]
  for (const file of names) {
    const ext = extname(file)
    if (!exts.includes(ext)) continue
    const path = join(dir, file)
    let text: string
    try {
      text = await deps.fs.readFile(path, "utf8")
    } catch (err) {
      // A folder named like a file (`old.yaml/`) is not a definition; anything else is a problem.
      if ((err as NodeJS.ErrnoException).code !== "EISDIR") problems.push(`${path}: (file): cannot be read: ${firstLine(err)}`)
      continue
    }
    let raw: unknown
    try {
      if (ext === ".md") {
        const { data, body } = frontMatter(text)
        raw = { name: basename(file, ext), ...(isPlainObject(data) ? data : {}), ...(body.trim() && !(isPlainObject(data) && data.prompt) ? { prompt: body.trim() } : {}) }
      } else raw = parseYaml(text)
    } catch (err) {
      problems.push(`${path}: (file): cannot be read as ${ext === ".md" ? "markdown with YAML front matter" : "YAML"}: ${firstLine(err)}`)
      continue
    }
    if (raw === null || raw === undefined) continue // an empty file
    const items = Array.isArray(raw) ? raw : isPlainObject(raw) && Array.isArray(raw[kind.list]) ? (raw[kind.list] as unknown[]) : [raw]
    items.forEach((item, i) => {
      const where = items.length > 1 ? `${path}#${i + 1}` : path
      if (!isPlainObject(item) || typeof item.name !== "string" || !item.name) {
        problems.push(`${where}: name: every ${kind.noun} needs a name (a string)`)
        return
      }
      out.push({ origin: { ...at, where }, name: item.name, fields: item })
    })
  }
  return out
}

/** Reads one folder of profile files into layers; unreadable files become problems. */
export function readProfileDir(deps: Pick<Deps, "fs">, dir: string, layer: ProfileLayer, problems: string[]): Promise<Definition[]> {
  return readDefinitionDir(deps, dir, { layer }, problems, PROFILE_KIND)
}

/** Every layer's definitions, lowest precedence first: shipped, shared (in order), project, options. */
export async function readLayers(
  deps: Pick<Deps, "fs">,
  dirs: DefinitionDirs,
  inline: Record<string, unknown>,
  kind: DefinitionKind,
  problems: string[],
): Promise<Definition[]> {
  const out = [...(await readDefinitionDir(deps, dirs.shipped, { layer: "shipped" }, problems, kind))]
  const shared = dirs.shared ?? []
  for (let i = 0; i < shared.length; i++) out.push(...(await readDefinitionDir(deps, shared[i]!, { layer: "shared", rank: i }, problems, kind)))
  out.push(...(await readDefinitionDir(deps, dirs.project, { layer: "project" }, problems, kind)))
  for (const [name, fields] of Object.entries(inline))
    out.push({ origin: { layer: "options", where: `opencode.json ${kind.option}.${name}` }, name, fields: isPlainObject(fields) ? { ...fields, name } : { name } })
  return out
}

interface Merged {
  value: Record<string, unknown>
  /** Field → the layer that set it last; for nested fields also `field.sub` → the layer that set that. */
  origins: Record<string, Origin>
  /** The layer to blame for a problem at `path` (one level deeper for nested fields). */
  blame(path: readonly PropertyKey[]): Origin
}

/** Merges definitions of one name, later winning field by field (nested fields one level deeper). */
export function mergeDefinitions(defs: readonly Definition[], nested: ReadonlySet<string>): Merged {
  const value: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  const deep = new Map<string, Origin>()
  for (const d of defs) {
    for (const [k, v] of Object.entries(d.fields)) {
      const merge = nested.has(k) && isPlainObject(value[k]) && isPlainObject(v)
      if (!merge) for (const key of [...deep.keys()]) if (key.startsWith(`${k}.`)) deep.delete(key)
      value[k] = merge ? { ...(value[k] as Record<string, unknown>), ...v } : v
      if (nested.has(k) && isPlainObject(v)) for (const sub of Object.keys(v)) deep.set(`${k}.${sub}`, d.origin)
      origins[k] = d.origin
    }
  }
  for (const [key, origin] of deep) origins[key] = origin
  const last = defs[defs.length - 1]!.origin
  const blame = (path: readonly PropertyKey[]): Origin => {
    if (!path.length) return last
    const top = String(path[0])
    return (path.length > 1 ? deep.get(`${top}.${String(path[1])}`) : undefined) ?? origins[top] ?? last
  }
  return { value, origins, blame }
}

/**
 * Validates each name's merged definition with `schema`. The layer behind each problem is
 * dropped and the rest tried again, so a bad layer falls back to the ones below it; a name with
 * no valid definition left is reported and left out.
 */
export function resolveDefinitions<T>(
  defs: readonly Definition[],
  schema: z.ZodType<T>,
  kind: DefinitionKind,
  problems: string[],
): { values: Map<string, T>; origins: Map<string, Record<string, Origin>> } {
  const byName = new Map<string, Definition[]>()
  for (const d of defs) byName.set(d.name, [...(byName.get(d.name) ?? []), d])
  const values = new Map<string, T>()
  const origins = new Map<string, Record<string, Origin>>()
  for (const [name, ds] of byName) {
    let use = [...ds]
    while (use.length) {
      const m = mergeDefinitions(use, kind.nested)
      const r = schema.safeParse(m.value)
      if (r.success) {
        values.set(name, r.data)
        origins.set(name, m.origins)
        break
      }
      const bad = new Set<Origin>()
      for (const issue of r.error.issues) {
        if (issue.code === "unrecognized_keys") {
          for (const key of issue.keys) {
            const path = [...issue.path, key]
            const origin = m.blame(path)
            problems.push(`${origin.where}: ${path.join(".")}: not a ${kind.noun} field (check the spelling)`)
            bad.add(origin)
          }
          continue
        }
        const origin = m.blame(issue.path)
        problems.push(`${origin.where}: ${issue.path.length ? issue.path.join(".") : `(${kind.noun})`}: ${issue.message}`)
        bad.add(origin)
      }
      const before = use.length
      use = use.filter((d) => !bad.has(d.origin))
      if (use.length === before) use = use.slice(0, -1)
      if (!use.length) problems.push(`${kind.label} "${name}" was not loaded: no valid definition is left`)
    }
  }
  return { values, origins }
}

export async function loadProfiles(deps: Pick<Deps, "fs">, dirs: DefinitionDirs, inline: Record<string, unknown>): Promise<LoadedProfiles> {
  const problems: string[] = []
  const defs = await readLayers(deps, dirs, inline, PROFILE_KIND, problems)
  const { values, origins } = resolveDefinitions(defs, Profile, PROFILE_KIND, problems)
  return { profiles: values, origins, problems }
}

/** The distinct places a definition came from, in precedence order (lowest first). */
export function definedIn(origins: Record<string, Origin>): Origin[] {
  const seen = new Map<string, Origin>()
  for (const o of Object.values(origins)) seen.set(o.where, o)
  return [...seen.values()].sort((a, b) => PROFILE_LAYERS.indexOf(a.layer) - PROFILE_LAYERS.indexOf(b.layer) || (a.rank ?? 0) - (b.rank ?? 0))
}

/** Style and escalation guidance appended to every profile's prompt. */
export function promptSuffix(p: Profile): string {
  const style = {
    concise: "Be concise: short answers, no filler.",
    detailed: "Be thorough: explain your reasoning and what you checked.",
    technical: "Be technical and precise: exact names, paths, commands and numbers.",
  }[p.style]
  const lines = [style]
  if (p.escalate_on_uncertainty)
    lines.push("When you are unsure about something that matters, say so and escalate instead of guessing: as a background agent call ask_user; when talking to the user, ask them.")
  if (p.specialization) lines.push(`Your specialization: ${p.specialization}.`)
  return lines.join("\n")
}
