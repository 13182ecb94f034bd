import { basename, extname, join } from "node:path"
import { parse as parseYaml } from "yaml"
import type { Deps } from "../deps.js"
import { isPlainObject } from "../options.js"
import { Profile } from "./profiles.js"

/**
 * Profiles come from three places, later winning field by field:
 *   1. the shipped `config/agents/*.yaml`,
 *   2. the project's `.opencode/nso/agents/` (`*.yaml`, `*.yml`, or `*.md` with front matter —
 *      the body is the prompt),
 *   3. the `agents` option in opencode.json.
 * `tools` and `permission` merge one level deeper (a project can deny one more tool without
 * restating the rest). A layer that makes a profile invalid is reported (file, field, problem)
 * and left out; the profile falls back to the layers below it, and every other profile loads.
 */

/** The layers profiles come from, lowest precedence first. */
export const PROFILE_LAYERS = ["shipped", "project", "options"] as const
export type ProfileLayer = (typeof PROFILE_LAYERS)[number]

/** Where a definition came from: its layer (what precedence means) and where in it (for people). */
export interface Origin {
  layer: ProfileLayer
  /** A file path (with `#n` for the n-th profile of a list), or `opencode.json agents.<name>`. */
  where: string
}

export interface LoadedProfiles {
  profiles: Map<string, Profile>
  /** Where each field of each profile came from: name → field → origin. */
  origins: Map<string, Record<string, Origin>>
  problems: string[]
}

interface Layer {
  origin: Origin
  name: string
  fields: Record<string, unknown>
}

const NESTED = new Set(["tools", "permission"])

/** Splits `---` front matter from a markdown body. */
export function frontMatter(text: string): { data: unknown; body: string } {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?([\s\S]*)$/.exec(text)
  if (!m) return { data: {}, body: text }
  return { data: parseYaml(m[1]!) ?? {}, body: m[2]! }
}

/** Reads one folder of profile files into layers; unreadable files become problems. */
export async function readProfileDir(deps: Pick<Deps, "fs">, dir: string, layer: ProfileLayer, problems: string[]): Promise<Layer[]> {
  let names: string[]
  try {
    names = (await deps.fs.readdir(dir)).sort()
  } catch {
    return []
  }
  const layers: Layer[] = []
  for (const file of names) {
    const ext = extname(file)
    if (![".yaml", ".yml", ".md"].includes(ext)) continue
    const path = join(dir, file)
    let raw: unknown
    try {
      const text = await deps.fs.readFile(path, "utf8")
      if (ext === ".md") {
        const { data, body } = frontMatter(text)
        raw = { name: basename(file, ext), ...(isPlainObject(data) ? data : {}), ...(body.trim() && !(isPlainObject(data) && data.prompt) ? { prompt: body.trim() } : {}) }
      } else raw = parseYaml(text)
    } catch (err) {
      problems.push(`${path}: (file): cannot be read as ${ext === ".md" ? "markdown with YAML front matter" : "YAML"}: ${(err as Error).message.split("\n")[0]}`)
      continue
    }
    const items = Array.isArray(raw) ? raw : isPlainObject(raw) && Array.isArray(raw.agents) ? raw.agents : [raw]
    items.forEach((item, i) => {
      const where = items.length > 1 ? `${path}#${i + 1}` : path
      if (!isPlainObject(item) || typeof item.name !== "string" || !item.name) {
        problems.push(`${where}: name: every profile needs a name (a string)`)
        return
      }
      layers.push({ origin: { layer, where }, name: item.name, fields: item })
    })
  }
  return layers
}

function merge(layers: Layer[]): { value: Record<string, unknown>; origins: Record<string, Origin> } {
  const value: Record<string, unknown> = {}
  const origins: Record<string, Origin> = {}
  for (const l of layers) {
    for (const [k, v] of Object.entries(l.fields)) {
      value[k] = NESTED.has(k) && isPlainObject(value[k]) && isPlainObject(v) ? { ...value[k], ...v } : v
      origins[k] = l.origin
    }
  }
  return { value, origins }
}

export async function loadProfiles(
  deps: Pick<Deps, "fs">,
  dirs: { shipped: string; project: string },
  inline: Record<string, unknown>,
): Promise<LoadedProfiles> {
  const problems: string[] = []
  const layers = [
    ...(await readProfileDir(deps, dirs.shipped, "shipped", problems)),
    ...(await readProfileDir(deps, dirs.project, "project", problems)),
    ...Object.entries(inline).map(([name, fields]): Layer => ({
      origin: { layer: "options", where: `opencode.json agents.${name}` },
      name,
      fields: isPlainObject(fields) ? { name, ...fields } : { name },
    })),
  ]
  const byName = new Map<string, Layer[]>()
  for (const l of layers) byName.set(l.name, [...(byName.get(l.name) ?? []), l])

  const profiles = new Map<string, Profile>()
  const origins = new Map<string, Record<string, Origin>>()
  for (const [name, ls] of byName) {
    let use = [...ls]
    // Drop the layer behind each problem and try again with the rest.
    while (use.length) {
      const { value, origins: o } = merge(use)
      const r = Profile.safeParse(value)
      if (r.success) {
        profiles.set(name, r.data)
        origins.set(name, o)
        break
      }
      const bad = new Set<Origin>()
      for (const issue of r.error.issues) {
        const field = String(issue.path[0] ?? "(profile)")
        const origin = o[field] ?? use[use.length - 1]!.origin
        problems.push(`${origin.where}: ${issue.path.length ? issue.path.join(".") : "(profile)"}: ${issue.message}`)
        bad.add(origin)
      }
      const before = use.length
      use = use.filter((l) => !bad.has(l.origin))
      if (use.length === before) use = use.slice(0, -1)
      if (!use.length) problems.push(`agent "${name}" was not loaded: no valid definition is left`)
    }
  }
  return { profiles, origins, problems }
}

/** The distinct places a profile was defined, in precedence order (lowest first). */
export function definedIn(origins: Record<string, Origin>): Origin[] {
  const seen = new Map<string, Origin>()
  for (const o of Object.values(origins)) seen.set(o.where, o)
  return [...seen.values()].sort((a, b) => PROFILE_LAYERS.indexOf(a.layer) - PROFILE_LAYERS.indexOf(b.layer))
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
