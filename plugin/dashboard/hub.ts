import { randomBytes } from "node:crypto"
import { itemKey, type Item } from "./view.js"

/**
 * The live feed behind the page: the current item of every key, and a bounded ring of recent
 * changes numbered in order. A page that reconnects with `Last-Event-ID` gets exactly the changes
 * after it; one too far behind (or from an earlier server, another epoch) gets a full snapshot.
 */

export interface Change {
  /** `<epoch>-<seq>`: the SSE event id. */
  id: string
  seq: number
  item: Item
}

export interface Snapshot {
  /** The id of the last change the snapshot includes. */
  id: string
  items: Item[]
}

/** Messages and board posts kept for the page (newest); tasks, questions and runs are all kept. */
export const KEEP_PER_KIND = { message: 1_000, post: 1_000 } as const

export class Hub {
  /** Differs per hub: ids from another server's feed never match this one's. */
  readonly epoch = randomBytes(4).toString("hex")
  private seq = 0
  private readonly ring: Change[] = []
  private readonly items = new Map<string, { item: Item; json: string }>()
  private readonly counts = new Map<string, string[]>()
  private readonly listeners = new Set<(c: Change) => void>()

  constructor(readonly ringSize = 2_000) {}

  /** Records the item if it changed; tells every listener. Returns whether it changed. */
  publish(item: Item): boolean {
    const key = itemKey(item)
    const json = JSON.stringify(item.data)
    const had = this.items.get(key)
    if (had?.json === json) return false
    this.items.set(key, { item, json })
    if (!had) this.bound(item.kind, key)
    const c: Change = { id: `${this.epoch}-${++this.seq}`, seq: this.seq, item }
    this.ring.push(c)
    if (this.ring.length > this.ringSize) this.ring.splice(0, this.ring.length - this.ringSize)
    for (const l of this.listeners) l(c)
    return true
  }

  private bound(kind: Item["kind"], key: string): void {
    const cap = (KEEP_PER_KIND as Record<string, number>)[kind]
    if (!cap) return
    const keys = this.counts.get(kind) ?? []
    keys.push(key)
    this.counts.set(kind, keys)
    while (keys.length > cap) this.items.delete(keys.shift()!)
  }

  get lastId(): string {
    return `${this.epoch}-${this.seq}`
  }

  snapshot(): Snapshot {
    return { id: this.lastId, items: [...this.items.values()].map((x) => x.item) }
  }

  /**
   * The changes after `lastEventId`, oldest first; undefined when they cannot all be given (an
   * unknown or malformed id, another epoch, or older than the ring): send a snapshot then.
   */
  since(lastEventId: string | undefined): Change[] | undefined {
    const m = lastEventId && /^([0-9a-f]+)-(\d+)$/.exec(lastEventId)
    if (!m || m[1] !== this.epoch) return undefined
    const seq = Number(m[2])
    if (seq > this.seq) return undefined
    if (seq === this.seq) return []
    const first = this.ring[0]?.seq ?? this.seq + 1
    if (seq < first - 1) return undefined
    return this.ring.slice(seq - first + 1)
  }

  subscribe(listener: (c: Change) => void): () => void {
    this.listeners.add(listener)
    return () => void this.listeners.delete(listener)
  }
}
