import { InjectionMeta, type Kind, type Source } from "../protocol.js"

/**
 * Deciding where a message came from. Only facts about *where* it came from count: NSO's own
 * injection metadata (which only NSO writes), the session's ancestry, and whether OpenCode itself
 * generated the parts. What the text says about its author never counts.
 */

export interface IncomingPart {
  text: string
  /** OpenCode marks parts it generated itself (and NSO's injections) as synthetic. */
  synthetic?: boolean
  /** `metadata.nso` of the part, unvalidated. */
  nso?: unknown
}

export interface IncomingMessage {
  sessionId: string
  /** Set when the session is a child (created by a delegating agent). */
  parentSessionId?: string
  /** The agent running in the parent session, when known. */
  parentAgent?: string
  parts: readonly IncomingPart[]
}

export interface Classification {
  source: Source
  /** `user`, `system`, or the sending agent's name. */
  from: string
  kind?: Kind
  /** Task / question / message ids carried by an NSO injection. */
  ids: string[]
  /** Which rule decided, for logs and tests. */
  rule: "nso-metadata" | "opencode-synthetic" | "child-session" | "human"
}

export function classify(msg: IncomingMessage): Classification {
  for (const part of msg.parts) {
    if (part.nso === undefined) continue
    const meta = InjectionMeta.safeParse(part.nso)
    // Malformed metadata is not trusted to say "agent" or "system"; fall through to ancestry.
    if (meta.success) {
      return { source: meta.data.source, from: meta.data.from, kind: meta.data.kind, ids: meta.data.ids, rule: "nso-metadata" }
    }
  }
  const texts = msg.parts.filter((p) => p.text.length > 0)
  if (texts.length > 0 && texts.every((p) => p.synthetic)) {
    return { source: "system", from: "system", ids: [], rule: "opencode-synthetic" }
  }
  if (msg.parentSessionId) {
    return { source: "agent", from: msg.parentAgent ?? "parent", ids: [], rule: "child-session" }
  }
  return { source: "user", from: "user", ids: [], rule: "human" }
}
