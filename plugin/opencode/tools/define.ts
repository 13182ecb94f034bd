import { tool, type ToolContext, type ToolResult } from "@opencode-ai/plugin"
import type { z } from "zod"
import { ValidationError } from "../../protocol.js"
import { TaskError } from "../../tasks/manager.js"

/** What a tool body sees of the call: NSO's terms, not OpenCode's context object. */
export interface Call {
  sessionId: string
  /** The agent the prompt runs as. */
  agent: string
  /** Fires when the session is aborted (and, in OpenCode, shortly after a tool finished: ignore it once done). */
  signal: AbortSignal
  /** Shown on the tool's row in the TUI. */
  show(title: string, metadata?: Record<string, unknown>): void
  /** Asks OpenCode's permission system (the agent's rules; the user if a rule says ask); throws if refused. */
  ask?(permission: string, patterns: string[]): Promise<void>
}

export interface ToolSpec<Args extends z.ZodRawShape> {
  /** Paid for on every request that offers the tool: one line. */
  description: string
  args: Args
  run(args: z.infer<z.ZodObject<Args>>, call: Call): Promise<ToolResult>
}

/** Most characters a tool returns to the model; a longer output is cut with a note. */
export const MAX_OUTPUT_CHARS = 12_000

/**
 * Every NSO tool is made here: OpenCode validates the arguments against `args` before `run`;
 * this phrases every error for the model that made the call (what was wrong, what to do, no
 * stack) and bounds the output, so no tool repeats either.
 */
export function defineTool<Args extends z.ZodRawShape>(name: string, spec: ToolSpec<Args>) {
  return tool({
    description: spec.description,
    args: spec.args,
    async execute(args, ctx: ToolContext) {
      try {
        const out = await spec.run(args, {
          sessionId: ctx.sessionID,
          agent: ctx.agent,
          signal: ctx.abort,
          show: (title, metadata) => ctx.metadata({ title, ...(metadata ? { metadata } : {}) }),
          ...(typeof ctx.ask === "function" ? { ask: (permission: string, patterns: string[]) => ctx.ask({ permission, patterns, always: [], metadata: {} }) } : {}),
        })
        return typeof out === "string" ? bound(out) : { ...out, output: bound(out.output) }
      } catch (err) {
        throw modelError(name, err)
      }
    },
  })
}

/** Tool errors are read by a model: say what was wrong and what to do, without stack traces. */
function modelError(tool: string, err: unknown): Error {
  if (err instanceof TaskError || err instanceof ValidationError) return new Error(`${tool}: ${err.message}`)
  return new Error(`${tool} failed inside NSO: ${err instanceof Error ? err.message : String(err)}. Try again; if it keeps failing, tell the user.`)
}

function bound(text: string): string {
  if (text.length <= MAX_OUTPUT_CHARS) return text
  return `${text.slice(0, MAX_OUTPUT_CHARS)}\n…(cut: ${text.length - MAX_OUTPUT_CHARS} more characters; ask for one item at a time)`
}
