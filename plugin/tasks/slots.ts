import PQueue from "p-queue"

/** A held concurrency slot. `release` is idempotent: a task may end by several paths at once. */
export interface Lease {
  release(): void
}

/**
 * Model concurrency, per key (a model, or "default"). A slot stands for an agent doing model
 * work, so a task holds one only while it works: it gives it back while it waits for an answer
 * or for another task's write scope, and takes one again before it goes on. Higher `priority`
 * is served first; equal priorities first come, first served.
 */
export class Slots {
  private queues = new Map<string, PQueue>()

  /** @param concurrency slots per key, at least 1. */
  constructor(private readonly concurrency: number) {
    if (!Number.isInteger(concurrency) || concurrency < 1) throw new TypeError(`Slots: concurrency must be a whole number ≥ 1, got ${concurrency}`)
  }

  /** Resolves with a lease once a slot under `key` is free. */
  acquire(key: string, priority = 0): Promise<Lease> {
    return new Promise((granted) => {
      void this.queue(key).add(
        () =>
          new Promise<void>((free) => {
            let held = true
            granted({
              release: () => {
                if (!held) return
                held = false
                free()
              },
            })
          }),
        { priority },
      )
    })
  }

  /** Slots held under this key. */
  inUse(key: string): number {
    return this.queues.get(key)?.pending ?? 0
  }

  /** Requests waiting for a slot under this key. */
  waiting(key: string): number {
    return this.queues.get(key)?.size ?? 0
  }

  /** Forgets waiting requests (shutdown): they are never granted. */
  clear(): void {
    for (const q of this.queues.values()) q.clear()
  }

  private queue(key: string): PQueue {
    let q = this.queues.get(key)
    if (!q) {
      q = new PQueue({ concurrency: this.concurrency })
      this.queues.set(key, q)
    }
    return q
  }
}
