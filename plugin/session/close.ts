import { join } from "node:path"
import type { Deps } from "../deps.js"
import type { Question, Task } from "../protocol.js"
import type { Job } from "../jobs/job.js"
import type { SessionInfo, SessionRegistry } from "./registry.js"

/** The dated summary appended to `01_memory/progress.md` when a session closes. */
export function sessionSummary(info: SessionInfo, tasks: readonly Task[], questions: readonly Question[], now: number, jobs: readonly Job[] = []): string {
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
  if (jobs.length) lines.push(`- Jobs: ${jobs.map((j) => `${j.title} [${j.status}${j.exitCode !== undefined ? `, exit ${j.exitCode}` : ""}]`).join("; ")}`)
  return lines.join("\n") + "\n"
}

export async function appendProgress(deps: Pick<Deps, "fs">, projectDir: string, contextDir: string, text: string): Promise<string> {
  const path = join(projectDir, contextDir, "01_memory", "progress.md")
  await deps.fs.mkdir(join(path, ".."), { recursive: true })
  await deps.fs.appendFile(path, text)
  return path
}

export interface CloseSources {
  projectDir: string
  contextDir: string
  registry: SessionRegistry
  tasks(): Iterable<Task>
  questions(): Iterable<Question>
  /** Background jobs (of every session). */
  jobs?(): Iterable<Job>
}

/**
 * Close summaries, once per root session: when the session is deleted, and for every open root
 * session when the server is stopped (SIGTERM), where OpenCode calls nothing and the process may
 * exit right after the signal handlers: that path is synchronous.
 */
export class SessionCloser {
  private closed = new Set<string>()

  constructor(
    private readonly deps: Pick<Deps, "fs" | "clock" | "appendSync">,
    private readonly src: CloseSources,
  ) {}

  /** Appends the session's summary to progress.md (once); returns the path, or undefined if done before. */
  async close(id: string): Promise<string | undefined> {
    if (this.closed.has(id)) return undefined
    this.closed.add(id)
    return appendProgress(this.deps, this.src.projectDir, this.src.contextDir, this.summary(id))
  }

  /** The server is stopping: summarise every root session that saw messages (best effort). */
  flushSync(): void {
    for (const s of this.src.registry.all()) {
      if (s.parentId || this.closed.has(s.id) || s.counts.user + s.counts.agent === 0) continue
      this.closed.add(s.id)
      try {
        this.deps.appendSync(join(this.src.projectDir, this.src.contextDir, "01_memory", "progress.md"), this.summary(s.id).replace("\n## ", "\n## (server stopped) "))
      } catch {
        // Best effort by definition.
      }
    }
  }

  private summary(id: string): string {
    const tasks = [...this.src.tasks()].filter((t) => t.parentSessionId === id)
    const taskIds = new Set(tasks.map((t) => t.id))
    const questions = [...this.src.questions()].filter((q) => q.taskId && taskIds.has(q.taskId))
    const jobs = [...(this.src.jobs?.() ?? [])].filter((j) => j.sessionId === id)
    return sessionSummary(this.src.registry.get(id), tasks, questions, this.deps.clock.now(), jobs)
  }
}
