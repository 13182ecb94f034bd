import { join } from "node:path"
import type { Deps } from "../deps.js"
import { JsonlLog } from "./jsonl.js"

/**
 * Auto-population: one JSONL line per tool call in `.opencode/nso/log.jsonl`, so a person and
 * agents in other sessions can see what happened. Arguments are summarised: secrets redacted,
 * long values cut.
 */

const SECRET_KEY = /pass(word|wd)?|secret|token|api[-_]?key|auth(orization)?|credential|private[-_]?key|cookie|session[-_]?key/i
const SECRET_VALUE = [
  /\bsk-[A-Za-z0-9_-]{16,}/g, // OpenAI-style keys
  /\bgh[pousr]_[A-Za-z0-9]{20,}/g, // GitHub tokens
  /\bAKIA[0-9A-Z]{16}\b/g, // AWS access key ids
  /\bxox[abprs]-[A-Za-z0-9-]{10,}/g, // Slack tokens
  /\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]{12,}/gi,
  /-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----/g,
  /\b(password|passwd|pwd|token|secret|api[_-]?key)=([^\s&"']+)/gi,
]
export const REDACTED = "[redacted]"

export function redactText(s: string): string {
  let out = s
  for (const re of SECRET_VALUE) out = out.replace(re, (m, k: string | undefined) => (k && /=/.test(m) ? `${k}=${REDACTED}` : REDACTED))
  return out
}

/** A short, safe summary of tool arguments. */
export function summarizeArgs(args: unknown, maxChars = 120, depth = 0): unknown {
  if (typeof args === "string") {
    const clean = redactText(args)
    return clean.length > maxChars ? `${clean.slice(0, maxChars)}…(+${clean.length - maxChars} chars)` : clean
  }
  if (args === null || typeof args !== "object") return args
  if (depth >= 3) return "[…]"
  if (Array.isArray(args)) {
    const head = args.slice(0, 5).map((v) => summarizeArgs(v, maxChars, depth + 1))
    return args.length > 5 ? [...head, `…(+${args.length - 5} items)`] : head
  }
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(args)) out[k] = SECRET_KEY.test(k) ? REDACTED : summarizeArgs(v, maxChars, depth + 1)
  return out
}

export interface ToolCallRecord {
  time: string
  session: string
  agent?: string
  tool: string
  args: unknown
  durationMs?: number
  ok: boolean
  error?: string
}

export class ToolLog {
  private started = new Map<string, number>()
  private readonly out: JsonlLog

  constructor(
    private readonly deps: Pick<Deps, "fs" | "clock" | "log">,
    path: string,
  ) {
    this.out = new JsonlLog(deps, path)
  }

  static at(projectDir: string, stateDir: string): string {
    return join(projectDir, stateDir, "log.jsonl")
  }

  before(callId: string): void {
    this.started.set(callId, this.deps.clock.now())
    // Calls that never finish must not leak: keep the map bounded.
    if (this.started.size > 10_000) this.started.delete(this.started.keys().next().value!)
  }

  after(call: { callId: string; sessionId: string; agent?: string; tool: string; args: unknown; error?: string }): ToolCallRecord {
    const t0 = this.started.get(call.callId)
    this.started.delete(call.callId)
    const rec: ToolCallRecord = {
      time: new Date(this.deps.clock.now()).toISOString(),
      session: call.sessionId,
      agent: call.agent,
      tool: call.tool,
      args: summarizeArgs(call.args),
      durationMs: t0 === undefined ? undefined : this.deps.clock.now() - t0,
      ok: call.error === undefined,
      ...(call.error !== undefined ? { error: redactText(call.error).slice(0, 300) } : {}),
    }
    // The tool call does not wait for the log.
    this.out.append(rec)
    return rec
  }

  /** A line for something that is not a tool call but belongs beside them (a background job starting or ending). */
  note(r: { sessionId: string; agent?: string; tool: string; args: unknown; durationMs?: number; error?: string }): void {
    this.out.append({
      time: new Date(this.deps.clock.now()).toISOString(),
      session: r.sessionId,
      agent: r.agent,
      tool: r.tool,
      args: summarizeArgs(r.args),
      durationMs: r.durationMs,
      ok: r.error === undefined,
      ...(r.error !== undefined ? { error: redactText(r.error).slice(0, 300) } : {}),
    } satisfies ToolCallRecord)
  }

  /** Resolves when every queued line is written. */
  flush(): Promise<void> {
    return this.out.flush()
  }
}
