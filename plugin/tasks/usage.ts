import type { Task, TaskUsage } from "../protocol.js"
import { descendants, tree } from "./tree.js"

export const NO_USAGE: TaskUsage = { input: 0, output: 0, reasoning: 0, cacheRead: 0, cacheWrite: 0, cost: 0, turns: 0 }

export function addUsage(a: TaskUsage, b: TaskUsage): TaskUsage {
  return {
    input: a.input + b.input,
    output: a.output + b.output,
    reasoning: a.reasoning + b.reasoning,
    cacheRead: a.cacheRead + b.cacheRead,
    cacheWrite: a.cacheWrite + b.cacheWrite,
    cost: a.cost + b.cost,
    turns: a.turns + b.turns,
  }
}

/**
 * What a token budget counts: every token the provider processed for the task, cached ones
 * included — a budget is about what the user pays for and waits on, and OpenCode reports cache
 * reads apart from `input`.
 */
export function totalTokens(u: TaskUsage): number {
  return u.input + u.output + u.reasoning + u.cacheRead + u.cacheWrite
}

/** A task's own usage plus that of every task under it. */
export function rolledUp(tasks: ReadonlyMap<string, Task>, id: string): TaskUsage {
  const own = tasks.get(id)?.usage ?? NO_USAGE
  return descendants(tasks, id).reduce((sum, t) => addUsage(sum, t.usage ?? NO_USAGE), own)
}

/** Every background task of a session's tree (delegated from it, or from a task under it). */
export function sessionUsage(tasks: ReadonlyMap<string, Task>, sessionId: string): TaskUsage {
  return tree(tasks, sessionId).reduce((sum, t) => addUsage(sum, t.usage ?? NO_USAGE), NO_USAGE)
}

/** `12.3k tok` style: short enough for a task line. */
export function compactTokens(n: number): string {
  if (n < 1_000) return `${n}`
  if (n < 1_000_000) return `${(n / 1_000).toFixed(n < 10_000 ? 1 : 0)}k`
  return `${(n / 1_000_000).toFixed(1)}M`
}

/** One short line: `3 turns · 1,250 tokens (1,000 in, 250 out, 40 cached) · $0.0123`. */
export function usageLine(u: TaskUsage): string {
  const cached = u.cacheRead + u.cacheWrite
  const parts = [`${u.input.toLocaleString("en-US")} in`, `${u.output.toLocaleString("en-US")} out`]
  if (u.reasoning) parts.push(`${u.reasoning.toLocaleString("en-US")} reasoning`)
  if (cached) parts.push(`${cached.toLocaleString("en-US")} cached`)
  return `${u.turns} turn${u.turns === 1 ? "" : "s"} · ${totalTokens(u).toLocaleString("en-US")} tokens (${parts.join(", ")})${u.cost ? ` · $${u.cost.toFixed(4)}` : ""}`
}
