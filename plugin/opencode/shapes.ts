import type { ToolEffect } from "../agents/profiles.js"

/**
 * OpenCode's names and shapes as NSO needs them: which tools change files (and which argument
 * names carry the paths), which of NSO's own tools belong to which side of the delegation
 * contract, the error name of a stopped reply. The core reasons about effects ("edit", "bash",
 * …) and outcomes ("aborted"), never these names.
 */

/** The error OpenCode reports when a reply is stopped (abort, Esc, quitting). */
export const ABORTED = "MessageAbortedError"

/** An error on an OpenCode assistant message or `session.error`, as OpenCode serialises it. */
export interface OpencodeError {
  name?: string
  data?: { message?: string; statusCode?: number; isRetryable?: boolean }
}

/**
 * Failures a later attempt may get past: rate limits and quotas that refill, an overloaded or
 * failing provider, the network. The same families OpenCode itself retries (five times, within
 * about a minute) before it reports the failure; NSO's retry is the slower second layer.
 */
const PASSING = new RegExp(
  [
    "\\b(408|429|5\\d\\d)\\b",
    "rate[ _-]?limit|too many requests|too_many_requests|quota|exhausted",
    "overloaded|unavailable|internal[ _-]?(server[ _-])?error|server[ _-]error|provider[ _-]returned[ _-]error|bad gateway|gateway time",
    "terminated|fetch failed|failed to fetch|network|connection (reset|refused|lost|closed|error)|socket hang up|reset before headers|getaddrinfo|econnreset|econnrefused|etimedout|eai_again|epipe|timed? ?out|upstream",
  ].join("|"),
  "i",
)

/**
 * OpenCode's error → what NSO's core needs: a name and message for people, whether it was a stop
 * (abort), and whether it is transient. Never transient: a stop, auth, context or output length —
 * and anything the model itself said (that is a reply, not an error).
 */
export function assistantError(err: OpencodeError): { name: string; message: string; aborted: boolean; transient: boolean } {
  const name = err.name ?? "Error"
  const message = err.data?.message ?? err.name ?? "unknown error"
  const status = err.data?.statusCode
  const never = name === ABORTED || /auth|ContextOverflow|OutputLength/i.test(name)
  const transient = !never && (err.data?.isRetryable === true || (status !== undefined && (status >= 500 || status === 429 || status === 408)) || PASSING.test(message))
  return { name, message, aborted: name === ABORTED, transient }
}

/** NSO's tools for agents that delegate (the Oracle, coordinators). */
export const ORACLE_TOOLS = ["delegate", "tasks", "answer", "project_context"] as const
/**
 * NSO's tools for background agents. Together within 1,500 bytes of schema: each is paid on
 * every request of every background agent (the project notes live in `board`, project: true).
 */
export const BACKGROUND_TOOLS = ["ask_user", "send_message", "board"] as const
/** NSO's tools that run commands: for the Oracle and any agent that may run bash (bash's rules apply). */
export const JOB_TOOLS = ["job_start"] as const
/** Every tool NSO adds: agents NSO does not own are offered none of them (schemas cost tokens). */
export const NSO_TOOLS: readonly string[] = [...ORACLE_TOOLS, ...BACKGROUND_TOOLS, ...JOB_TOOLS]

/** OpenCode's own agents (a user's opencode.json may add more; those are not NSO's either). */
export const OPENCODE_AGENTS = ["build", "plan", "general", "explore"] as const

/** OpenCode's blocking hand-off tool; NSO's agents hand off with `delegate` instead. */
export const OPENCODE_TASK_TOOL = "task"

/** OpenCode's built-in tools that change files (the ones its `edit` permission governs). */
export const WRITE_TOOLS: ReadonlySet<string> = new Set(["write", "edit", "patch", "apply_patch", "multiedit"])

/** What a tool does, in the terms profiles speak. */
export function effectOf(tool: string): ToolEffect | undefined {
  if (WRITE_TOOLS.has(tool)) return "edit"
  if (tool === "bash" || (JOB_TOOLS as readonly string[]).includes(tool)) return "bash"
  if (tool === "webfetch") return "webfetch"
  if ((ORACLE_TOOLS as readonly string[]).includes(tool)) return "delegate"
  if ((BACKGROUND_TOOLS as readonly string[]).includes(tool)) return "ask"
  return undefined
}

/** File paths a write-capable tool call would touch, from its arguments. */
export function writeTargets(tool: string, args: unknown): string[] {
  if (!WRITE_TOOLS.has(tool) || !args || typeof args !== "object") return []
  const a = args as Record<string, unknown>
  const out: string[] = []
  for (const key of ["filePath", "path", "file_path"]) if (typeof a[key] === "string") out.push(a[key] as string)
  if (tool === "patch" || tool === "apply_patch") {
    const text = typeof a.patchText === "string" ? a.patchText : typeof a.patch === "string" ? a.patch : ""
    for (const m of text.matchAll(/^\*\*\* (?:Add|Update|Delete) File: (.+)$/gm)) out.push(m[1]!.trim())
  }
  if (Array.isArray(a.edits)) for (const e of a.edits) if (e && typeof e === "object" && typeof (e as { filePath?: unknown }).filePath === "string") out.push((e as { filePath: string }).filePath)
  return out
}
