import type { Deps, TimerHandle } from "../deps.js"

export interface WatchdogOptions {
  /** No activity for this long → `onQuiet` (ms); 0 turns stall checks off. */
  stallMs: number
  /** Wall-clock limit per task → `onOverTime` (ms); 0 = none. */
  maxRuntimeMs: number
}

export interface WatchdogPorts {
  /** The task has been quiet for `quietMs` (≥ stallMs). The watchdog looks again stallMs later. */
  onQuiet(id: string, quietMs: number): void
  onOverTime(id: string, limitMs: number): void
}

/**
 * Timers that watch running tasks: one stall timer per task, re-armed to the moment the task
 * would become stalled (no polling), and an optional wall-clock limit. What a stall means is the
 * task manager's decision; this only keeps time.
 */
export class Watchdog {
  private lastActivity = new Map<string, number>()
  private stall = new Map<string, TimerHandle>()
  private limit = new Map<string, TimerHandle>()

  constructor(
    private readonly deps: Pick<Deps, "clock" | "timers">,
    private readonly opts: WatchdogOptions,
    private readonly ports: WatchdogPorts,
  ) {}

  /**
   * Starts watching (or restarts the clock of) a task. `limitMs`: the task's own wall-clock
   * limit, over the `maxRuntimeMs` option; the limit runs from the first watch.
   */
  watch(id: string, limitMs?: number): void {
    this.touch(id)
    this.arm(id, this.opts.stallMs)
    const limit = limitMs ?? this.opts.maxRuntimeMs
    if (limit > 0 && !this.limit.has(id)) this.limit.set(id, this.deps.timers.setTimeout(() => this.ports.onOverTime(id, limit), limit))
  }

  /** Any sign of life. */
  touch(id: string): void {
    this.lastActivity.set(id, this.deps.clock.now())
  }

  /** How long the task has been quiet, given its journaled last activity as a fallback. */
  quietFor(id: string, fallback: number): number {
    return this.deps.clock.now() - (this.lastActivity.get(id) ?? fallback)
  }

  unwatch(id: string): void {
    for (const m of [this.stall, this.limit]) {
      const h = m.get(id)
      if (h) this.deps.timers.clearTimeout(h)
      m.delete(id)
    }
    this.lastActivity.delete(id)
  }

  dispose(): void {
    for (const id of new Set([...this.stall.keys(), ...this.limit.keys()])) this.unwatch(id)
  }

  private arm(id: string, ms: number): void {
    if (this.opts.stallMs <= 0) return
    const prev = this.stall.get(id)
    if (prev) this.deps.timers.clearTimeout(prev)
    this.stall.set(
      id,
      this.deps.timers.setTimeout(() => {
        this.stall.delete(id)
        // Re-armed at once, from the time it fired: the next check never drifts.
        const quiet = this.quietFor(id, this.deps.clock.now())
        if (quiet < this.opts.stallMs) return this.arm(id, this.opts.stallMs - quiet)
        this.arm(id, this.opts.stallMs)
        this.ports.onQuiet(id, quiet)
      }, ms),
    )
  }
}
