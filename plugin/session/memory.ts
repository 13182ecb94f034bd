import { join } from "node:path"
import type { Deps } from "../deps.js"
import { TEMPLATES_DIR } from "../paths.js"

/**
 * The project memory files session init loads, relative to the context folder. Missing ones are
 * created from `agent_templates/memory/<same path>`.
 */
export const MEMORY_FILES = [
  "00_meta/tech-stack.md",
  "00_meta/patterns.md",
  "01_memory/active_context.md",
  "01_memory/progress.md",
] as const

export interface MemoryFile {
  /** Relative to the project, e.g. `.opencode/context/00_meta/tech-stack.md`. */
  path: string
  content: string
  /** Created by this call from a template. */
  created: boolean
}

/** Makes sure every memory file exists; returns them all with their content. */
export async function ensureMemoryFiles(
  deps: Pick<Deps, "fs">,
  projectDir: string,
  contextDir: string,
  createMissing: boolean,
): Promise<{ files: MemoryFile[]; missing: string[] }> {
  const files: MemoryFile[] = []
  const missing: string[] = []
  for (const rel of MEMORY_FILES) {
    const path = join(contextDir, rel)
    const abs = join(projectDir, path)
    try {
      files.push({ path, content: await deps.fs.readFile(abs, "utf8"), created: false })
      continue
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err
    }
    if (!createMissing) {
      missing.push(path)
      continue
    }
    const template = await deps.fs.readFile(join(TEMPLATES_DIR, "memory", rel), "utf8")
    await deps.fs.mkdir(join(abs, ".."), { recursive: true })
    // `wx`: if another session created it a moment ago, keep theirs.
    try {
      await deps.fs.writeFile(abs, template, { flag: "wx" })
      files.push({ path, content: template, created: true })
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err
      files.push({ path, content: await deps.fs.readFile(abs, "utf8"), created: false })
    }
  }
  return { files, missing }
}

/**
 * The memory block for the system prompt, within `budget` characters. Each file gets a fair
 * share; a cut file says so and where to read the rest.
 */
export function memoryBlock(files: readonly MemoryFile[], budget: number): { text: string; truncated: string[] } {
  const truncated: string[] = []
  const header = "# Project memory (loaded by NSO at session start)\n"
  let remaining = Math.max(0, budget - header.length)
  const parts: string[] = []
  files.forEach((f, i) => {
    const share = Math.floor(remaining / (files.length - i))
    const title = `\n## ${f.path}\n`
    const room = Math.max(0, share - title.length)
    let body = f.content.trim()
    if (body.length > room) {
      const marker = `\n[… truncated by NSO: ${body.length - room} more characters; read ${f.path} for the rest]`
      body = body.slice(0, Math.max(0, room - marker.length)) + marker
      truncated.push(f.path)
    }
    const piece = title + body + "\n"
    parts.push(piece)
    remaining -= piece.length
  })
  return { text: header + parts.join(""), truncated }
}
