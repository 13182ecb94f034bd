import { join } from "node:path"
import { z } from "zod"
import type { Deps } from "../deps.js"
import { parse, ValidationError } from "../protocol.js"

/**
 * The shared project state — goal, status and notes — that a person (through `nso context`) and
 * agents in any session (through the `project_context` tool) read and write.
 */
export const ProjectContext = z.object({
  goal: z.string().default(""),
  status: z.string().default(""),
  notes: z.array(z.object({ time: z.string(), by: z.string(), text: z.string() })).default([]),
  updatedAt: z.string().optional(),
  updatedBy: z.string().optional(),
})
export type ProjectContext = z.infer<typeof ProjectContext>

export const ContextUpdate = z
  .object({
    goal: z.string().max(2_000).optional(),
    status: z.string().max(2_000).optional(),
    note: z.string().min(1).max(4_000).optional(),
  })
  .strict()
export type ContextUpdate = z.infer<typeof ContextUpdate>

/** Most notes kept; older ones fall off the front. */
const MAX_NOTES = 200

export const contextPath = (projectDir: string, stateDir: string) => join(projectDir, stateDir, "context.json")

export async function readContext(deps: Pick<Deps, "fs">, path: string): Promise<ProjectContext> {
  let text: string
  try {
    text = await deps.fs.readFile(path, "utf8")
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return ProjectContext.parse({})
    throw err
  }
  let raw: unknown
  try {
    raw = JSON.parse(text)
  } catch {
    throw new Error(`${path} is not valid JSON; fix or delete it`)
  }
  return parse(ProjectContext, raw, `project context in ${path}`)
}

/** Applies an update and writes atomically (temp file + rename). */
export async function updateContext(
  deps: Pick<Deps, "fs" | "clock" | "ids">,
  path: string,
  update: unknown,
  by: string,
): Promise<ProjectContext> {
  const u = parse(ContextUpdate, update, "project context update")
  if (u.goal === undefined && u.status === undefined && u.note === undefined)
    throw new ValidationError("project context update", ["nothing to update: give at least one of goal, status or note"])
  const cur = await readContext(deps, path)
  const time = new Date(deps.clock.now()).toISOString()
  const next: ProjectContext = {
    ...cur,
    ...(u.goal !== undefined ? { goal: u.goal } : {}),
    ...(u.status !== undefined ? { status: u.status } : {}),
    notes: u.note !== undefined ? [...cur.notes, { time, by, text: u.note }].slice(-MAX_NOTES) : cur.notes,
    updatedAt: time,
    updatedBy: by,
  }
  await deps.fs.mkdir(join(path, ".."), { recursive: true })
  const tmp = `${path}.${deps.ids.id("tmp")}.tmp`
  await deps.fs.writeFile(tmp, JSON.stringify(next, null, 2) + "\n")
  await deps.fs.rename(tmp, path)
  return next
}

export function formatContext(c: ProjectContext, lastNotes = 10): string {
  const lines = [`Goal: ${c.goal || "(not set)"}`, `Status: ${c.status || "(not set)"}`]
  if (c.updatedAt) lines.push(`Updated: ${c.updatedAt} by ${c.updatedBy ?? "?"}`)
  const notes = c.notes.slice(-lastNotes)
  if (notes.length) {
    lines.push(`Notes (${c.notes.length}${c.notes.length > notes.length ? `, last ${notes.length}` : ""}):`)
    for (const n of notes) lines.push(`- ${n.time} ${n.by}: ${n.text}`)
  }
  return lines.join("\n")
}
