import type { Deps } from "../deps.js"
import type { SessionActivity } from "../buffer/policy.js"

/**
 * What NSO knows about each session: its ancestry, its agent, whether it is busy, when the user
 * last spoke, and counters for the close summary. Fed by hooks; read by init, delivery and close.
 */
export interface SessionInfo {
  id: string
  parentId?: string
  title?: string
  /** The agent of the latest prompt in this session. */
  agent?: string
  /** Text of the latest message into this session (what knowledge is matched against). */
  lastText?: string
  busy: boolean
  idleSince?: number
  lastUserMessageAt?: number
  /** Message counts by source, for the close summary. */
  counts: { user: number; agent: number; system: number }
  createdAt: number
  /** Whether the host has been asked for this session's ancestry. */
  resolved: boolean
}

export class SessionRegistry {
  private sessions = new Map<string, SessionInfo>()
  private lookups = new Map<string, Promise<SessionInfo>>()

  constructor(private readonly deps: Pick<Deps, "clock" | "host" | "log">) {}

  /** The record, created empty if unseen (ancestry unknown until `resolve`). */
  get(id: string): SessionInfo {
    let s = this.sessions.get(id)
    if (!s) {
      s = { id, busy: false, counts: { user: 0, agent: 0, system: 0 }, createdAt: this.deps.clock.now(), resolved: false }
      this.sessions.set(id, s)
    }
    return s
  }

  has(id: string): boolean {
    return this.sessions.has(id)
  }

  all(): SessionInfo[] {
    return [...this.sessions.values()]
  }

  /** Records what a `session.created`/`updated` event or a listing says about a session. */
  learn(id: string, facts: { parentId?: string; title?: string }): SessionInfo {
    const s = this.get(id)
    if (facts.parentId) s.parentId = facts.parentId
    if (facts.title) s.title = facts.title
    s.resolved = true
    return s
  }

  /** The record with its ancestry known, asking OpenCode once if needed. */
  resolve(id: string): Promise<SessionInfo> {
    const s = this.get(id)
    if (s.resolved) return Promise.resolve(s)
    let p = this.lookups.get(id)
    if (!p) {
      p = this.deps.host
        .session(id)
        .then((hs) => (hs ? this.learn(id, { parentId: hs.parentId, title: hs.title }) : s))
        .catch((err) => {
          this.deps.log.log("warn", "could not look up session", { id, error: String(err) })
          return s
        })
        .finally(() => this.lookups.delete(id))
      this.lookups.set(id, p)
    }
    return p
  }

  /** The root of a session's ancestry (the session the user talks in), asking OpenCode as needed. */
  async root(id: string): Promise<string> {
    let cur = await this.resolve(id)
    // Bounded: nesting is shallow, and a corrupt parent loop must not hang.
    for (let i = 0; i < 20 && cur.parentId; i++) cur = await this.resolve(cur.parentId)
    return cur.id
  }

  setBusy(id: string, busy: boolean): void {
    const s = this.get(id)
    if (s.busy && !busy) s.idleSince = this.deps.clock.now()
    if (!s.busy && !busy && s.idleSince === undefined) s.idleSince = this.deps.clock.now()
    s.busy = busy
  }

  activity(id: string, runningTasks: number): SessionActivity {
    const s = this.get(id)
    return { busy: s.busy, idleSince: s.idleSince, lastUserMessageAt: s.lastUserMessageAt, runningTasks, human: !s.parentId }
  }

  forget(id: string): void {
    this.sessions.delete(id)
  }
}
