import type { RunningOpencode } from "../harness/opencode.js"
/** Small helpers shared by the benchmark sections. Figures are printed, never asserted. */

export interface Row {
  section: string
  figure: string
  value: string
  target?: string
  note?: string
}

export function time<T>(fn: () => T): { ms: number; value: T } {
  const t0 = performance.now()
  const value = fn()
  return { ms: performance.now() - t0, value }
}

export async function timeAsync<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t0 = performance.now()
  const value = await fn()
  return { ms: performance.now() - t0, value }
}

/** Best of n runs, in ms (the least disturbed by the rest of the machine). */
export async function bestOf(n: number, fn: () => unknown | Promise<unknown>): Promise<number> {
  let best = Infinity
  for (let i = 0; i < n; i++) {
    const t0 = performance.now()
    await fn()
    best = Math.min(best, performance.now() - t0)
  }
  return best
}

export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!
}

export const fmtRate = (perSec: number) =>
  perSec >= 1e6 ? `${(perSec / 1e6).toFixed(2)} M/s` : perSec >= 1e3 ? `${(perSec / 1e3).toFixed(1)} k/s` : `${perSec.toFixed(0)} /s`
export const fmtMs = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(1)} µs` : `${ms.toFixed(ms < 10 ? 2 : 0)} ms`)
export const fmtBytes = (b: number) => (b >= 1 << 20 ? `${(b / (1 << 20)).toFixed(2)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(1)} KiB` : `${b} B`)

export function printTable(rows: Row[]): void {
  const cols: (keyof Row)[] = ["section", "figure", "value", "target", "note"]
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c] ?? "").length)))
  const line = (vals: string[]) => "| " + vals.map((v, i) => v.padEnd(widths[i]!)).join(" | ") + " |"
  console.log(line(cols.map(String)))
  console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|")
  for (const r of rows) console.log(line(cols.map((c) => String(r[c] ?? ""))))
}

export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc
  if (g) {
    g()
    g()
  }
}

/** One journal record as the benchmarks read it. */
export type Rec = { t: number; e: { type: string; [k: string]: unknown } }

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** Polls until `fn` gives a value; throws naming what it waited for. */
export async function until<T>(fn: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > end) throw new Error(`bench: timed out after ${timeoutMs / 1000} s waiting for ${what}`)
    await sleep(20)
  }
}

/** Until OpenCode reports no session busy. */
export async function allIdle(oc: RunningOpencode, what = "every session idle"): Promise<void> {
  await until(async () => {
    const r = await oc.client.session.status()
    return !Object.values(r.data ?? {}).some((s) => (s as { type: string }).type !== "idle")
  }, what)
}
