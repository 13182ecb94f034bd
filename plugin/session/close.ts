import { join } from "node:path"
import type { Deps } from "../deps.js"
import type { Question, Task } from "../protocol.js"
import type { SessionInfo } from "./registry.js"

/** The dated summary appended to `01_memory/progress.md` when a session closes. */
export function sessionSummary(info: SessionInfo, tasks: readonly Task[], questions: readonly Question[], now: number): string {
  const date = new Date(now).toISOString().slice(0, 16).replace("T", " ")
  const done = tasks.filter((t) => t.status === "completed")
  const failed = tasks.filter((t) => t.status === "failed" || t.status === "cancelled" || t.status === "stalled")
  const answered = questions.filter((q) => q.status === "answered")
  const lines = [
    `\n## ${date} UTC — session ${info.title ? `"${info.title}" ` : ""}(${info.id})`,
    `- Messages: ${info.counts.user} from the user, ${info.counts.agent} from agents, ${info.counts.system} from the system`,
    `- Tasks finished: ${done.length}${done.length ? ` (${done.map((t) => `${t.agent}: ${t.title}`).join("; ")})` : ""}`,
  ]
  if (failed.length) lines.push(`- Tasks not finished: ${failed.map((t) => `${t.agent}: ${t.title} [${t.status}]`).join("; ")}`)
  lines.push(`- Questions answered: ${answered.length}${answered.length ? ` (${answered.map((q) => `${q.from}: ${q.text.slice(0, 80)}`).join("; ")})` : ""}`)
  return lines.join("\n") + "\n"
}

export async function appendProgress(deps: Pick<Deps, "fs">, projectDir: string, contextDir: string, text: string): Promise<string> {
  const path = join(projectDir, contextDir, "01_memory", "progress.md")
  await deps.fs.mkdir(join(path, ".."), { recursive: true })
  await deps.fs.appendFile(path, text)
  return path
}
