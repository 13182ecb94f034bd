import { join, relative } from "node:path"
import type { Deps } from "../deps.js"
import { frontMatter } from "./load.js"
import type { Profile } from "./profiles.js"

/**
 * Knowledge bases: a profile's runbook folders, indexed once at start. For each prompt, the files
 * whose tags or keywords match the task are added to that agent's system prompt within a budget,
 * with their paths so the agent can read more.
 */

export interface KnowledgeFile {
  /** Relative to the project. */
  path: string
  tags: string[]
  /** Lower-case words from the name, headings and tags. */
  keywords: Set<string>
  content: string
}

/** Largest file indexed, in bytes; bigger ones are skipped (they would not fit a budget anyway). */
const MAX_FILE = 64 * 1024
const STOP = new Set(["this", "that", "with", "from", "what", "when", "have", "will", "your", "into", "then", "than", "about", "there", "which", "should", "would", "could", "please"])

export function words(text: string): string[] {
  return (text.toLowerCase().match(/[a-z0-9][a-z0-9_-]{3,}/g) ?? []).filter((w) => !STOP.has(w))
}

export class KnowledgeIndex {
  private byProfile = new Map<string, KnowledgeFile[]>()

  static async build(deps: Pick<Deps, "fs" | "log">, projectDir: string, profiles: Map<string, Profile>): Promise<KnowledgeIndex> {
    const index = new KnowledgeIndex()
    const cache = new Map<string, KnowledgeFile[]>()
    for (const [name, p] of profiles) {
      const files: KnowledgeFile[] = []
      for (const k of p.knowledge) {
        let all = cache.get(k.folder)
        if (!all) {
          all = await readFolder(deps, projectDir, k.folder)
          cache.set(k.folder, all)
        }
        files.push(...all.filter((f) => !k.tags.length || f.tags.some((t) => k.tags.includes(t))))
      }
      if (files.length) index.byProfile.set(name, files)
    }
    return index
  }

  files(profile: string): KnowledgeFile[] {
    return this.byProfile.get(profile) ?? []
  }

  /** The knowledge block for a prompt, or undefined when nothing matches. */
  select(profile: string, taskText: string, budgetChars: number): { text: string; paths: string[] } | undefined {
    const files = this.byProfile.get(profile)
    if (!files?.length) return undefined
    const want = new Set(words(taskText))
    const scored = files
      .map((f) => ({ f, score: f.tags.filter((t) => want.has(t.toLowerCase())).length * 3 + [...f.keywords].filter((k) => want.has(k)).length }))
      .filter((s) => s.score > 0)
      .sort((a, b) => b.score - a.score || a.f.path.localeCompare(b.f.path))
    if (!scored.length) return undefined
    const head = "# Knowledge for this task (selected by NSO from your runbooks; read the files for more)\n"
    let room = budgetChars - head.length
    const parts: string[] = []
    const paths: string[] = []
    for (const { f } of scored) {
      const title = `\n## ${f.path}\n`
      if (room <= title.length + 40) break
      let body = f.content.trim()
      const max = room - title.length - 1
      if (body.length > max) body = `${body.slice(0, Math.max(0, max - 60))}\n[… cut by NSO; read ${f.path} for the rest]`
      parts.push(title + body + "\n")
      paths.push(f.path)
      room -= title.length + body.length + 1
    }
    return paths.length ? { text: head + parts.join(""), paths } : undefined
  }
}

async function readFolder(deps: Pick<Deps, "fs" | "log">, projectDir: string, folder: string): Promise<KnowledgeFile[]> {
  const root = join(projectDir, folder)
  let names: string[]
  try {
    names = (await deps.fs.readdir(root, { recursive: true })) as string[]
  } catch {
    deps.log.log("warn", `knowledge folder ${folder} does not exist; it is skipped`)
    return []
  }
  const out: KnowledgeFile[] = []
  for (const name of names.sort()) {
    if (!/\.(md|markdown|txt)$/i.test(name)) continue
    const abs = join(root, name)
    try {
      const st = await deps.fs.stat(abs)
      if (!st.isFile() || st.size > MAX_FILE) continue
      const text = await deps.fs.readFile(abs, "utf8")
      const { data, body } = frontMatter(text)
      const fm = (data ?? {}) as { tags?: unknown; keywords?: unknown }
      const tags = Array.isArray(fm.tags) ? fm.tags.map(String) : []
      const extra = Array.isArray(fm.keywords) ? fm.keywords.map(String) : []
      const headings = body.split("\n").filter((l) => l.startsWith("#")).join(" ")
      const keywords = new Set([...words(name.replace(/[/\\._-]/g, " ")), ...words(headings), ...tags.map((t) => t.toLowerCase()), ...extra.flatMap(words)])
      out.push({ path: relative(projectDir, abs), tags, keywords, content: body })
    } catch (err) {
      deps.log.log("warn", `cannot read knowledge file ${abs}`, { error: String(err) })
    }
  }
  return out
}
