import type { AgentCatalogue } from "../agents/catalogue.js"
import { header } from "../buffer/format.js"
import { TERMINAL_TASK_STATUSES, type Envelope, type Question, type Task } from "../protocol.js"
import type { IntentSuggestion } from "../router/intent.js"
import type { SessionInit } from "./init.js"
import type { SessionRegistry } from "./registry.js"

export interface PromptSources {
  init: SessionInit
  registry: SessionRegistry
  catalogue: AgentCatalogue
  /** Most characters of runbooks added per prompt. */
  knowledgeBudgetChars: number
  suggestion(sessionId: string): IntentSuggestion | undefined
  pending(sessionId: string): Envelope[]
  tree(sessionId: string): Task[]
  openQuestions(): Question[]
  /** A background agent's board digest (messaging), if its workflow board has posts. */
  boardDigest?(sessionId: string): string | undefined
  /** A one-time line for this session's next turn (the user stopped a reply while work ran on). */
  reminder?(sessionId: string): string | undefined
}

/**
 * What NSO adds to a session's prompt: memory files, header guide or isolation header (from
 * init), matching runbooks for the agent, the intent monitor's hint; and, when OpenCode
 * compacts a session, the task board so the Oracle does not forget its background work.
 */
export class PromptAdditions {
  constructor(private readonly src: PromptSources) {}

  async system(sessionId: string): Promise<string[]> {
    const out = await this.src.init.systemFor(sessionId)
    const info = this.src.registry.get(sessionId)
    if (info.agent && info.lastText && this.src.catalogue.profiles.get(info.agent)?.knowledge.length) {
      const k = (await this.src.catalogue.knowledge()).select(info.agent, info.lastText, this.src.knowledgeBudgetChars)
      if (k) out.push(k.text)
    }
    const board = this.src.boardDigest?.(sessionId)
    if (board) out.push(board)
    const reminder = this.src.reminder?.(sessionId)
    if (reminder) out.push(reminder)
    const s = this.src.suggestion(sessionId)
    if (s) out.push(`NSO intent monitor: the user's last message matches the "${s.rule}" rule; the ${s.agent} agent may suit it.`)
    return out
  }

  compacting(sessionId: string): string[] {
    const pending = this.src.pending(sessionId)
    const tasks = this.src.tree(sessionId).filter((t) => !TERMINAL_TASK_STATUSES.has(t.status))
    if (!pending.length && !tasks.length) return []
    const open = this.src.openQuestions()
    const lines = ["NSO task board (keep this across compaction):"]
    for (const t of tasks) {
      const q = open.find((x) => x.taskId === t.id)
      lines.push(`- task ${t.id} · ${t.agent} · ${t.status} · ${t.title}${q ? ` · pending question ${q.id}: ${q.text}` : ""}`)
    }
    for (const e of pending) lines.push(`- waiting for delivery: ${header(e)}`)
    return [lines.join("\n")]
  }
}
