import type { Deps } from "../deps.js"
import type { SessionInit } from "../session/init.js"
import type { SessionRegistry } from "../session/registry.js"
import type { JsonlLog } from "../telemetry/jsonl.js"
import { classify, type Classification, type IncomingPart } from "./classify.js"
import type { IntentMonitor, IntentSuggestion } from "./intent.js"
import { route } from "./route.js"

/**
 * Every message that reaches a session, on its way in: init runs first, the message is tagged
 * by where it came from, the session's activity is updated (a human speaking holds agent
 * messages until the next pause), the intent monitor may suggest an agent, and the tag is
 * written to the audit log.
 */
export class Inbound {
  private suggestions = new Map<string, IntentSuggestion>()

  constructor(
    private readonly deps: Pick<Deps, "clock">,
    private readonly registry: SessionRegistry,
    private readonly init: SessionInit,
    private readonly intents: IntentMonitor,
    private readonly tags: JsonlLog,
    /** The human wrote in a root session (after the message is tagged). */
    private readonly onHuman: (sessionId: string) => void = () => {},
  ) {}

  async message(sessionId: string, agent: string | undefined, parts: IncomingPart[], messageId?: string): Promise<Classification> {
    const info = await this.registry.resolve(sessionId)
    // OpenCode stores the message only after this hook: a root session's init (its memory in the
    // system prompt) must be ready first, a child's needs nothing that the system hook does not
    // wait for itself, so its bookkeeping does not hold up the prompt.
    const init = this.init.ensure(sessionId, "chat.message")
    if (!info.parentId) await init
    else void init.catch(() => {}) // init logs its own failures
    const parent = info.parentId ? this.registry.get(info.parentId) : undefined
    const c = classify({ sessionId, parentSessionId: info.parentId, parentAgent: parent?.agent, parts })
    if (agent) info.agent = agent
    info.counts[c.source]++
    const said = parts.map((p) => p.text).join("\n").trim()
    if (said) info.lastText = said
    if (c.source === "user" && !info.parentId) {
      // The human spoke: hold agent messages until the next pause.
      info.lastUserMessageAt = this.deps.clock.now()
      this.registry.setBusy(sessionId, true)
      const text = parts.filter((p) => !p.synthetic).map((p) => p.text).join("\n")
      const r = route({ source: "user", kind: "assignment", priority: "medium", text }, this.intents)
      if (r.handler === "intent" && r.suggestion) this.suggestions.set(sessionId, r.suggestion)
      else this.suggestions.delete(sessionId)
    }
    // An audit line, not state: it grows with the chat, so it stays out of the journal.
    this.tags.append({ time: new Date(this.deps.clock.now()).toISOString(), sessionId, messageId, source: c.source, from: c.from, agent })
    if (c.source === "user" && !info.parentId) this.onHuman(sessionId)
    return c
  }

  /** The intent monitor's suggestion for the user's last message in this session, if any. */
  suggestion(sessionId: string): IntentSuggestion | undefined {
    return this.suggestions.get(sessionId)
  }
}
