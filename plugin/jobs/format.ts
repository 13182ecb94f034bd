import type { Job } from "./job.js"

/** `3.2 s`, `4 min 05 s`, `1 h 02 min`. */
export function duration(ms: number): string {
  const s = Math.max(0, ms) / 1000
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`
  const m = Math.floor(s / 60)
  if (m < 60) return `${m} min ${String(Math.round(s % 60)).padStart(2, "0")} s`
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`
}

/** How it ended, in words: `succeeded (exit 0)`, `failed (exit 2)`, `timed out`, `cancelled (by …)`. */
export function outcome(j: Job): string {
  const how = j.signal ? `signal ${j.signal}` : j.exitCode !== undefined ? `exit ${j.exitCode}` : undefined
  switch (j.status) {
    case "running":
      return "running"
    case "succeeded":
      return `succeeded (${how ?? "exit 0"})`
    case "failed":
      return `failed (${[how, j.reason].filter(Boolean).join("; ") || "no exit record"})`
    case "timed_out":
      return `timed out (${j.reason ?? `over its ${duration(j.timeoutMs)} limit`})`
    case "cancelled":
      return `cancelled (${j.reason ?? "cancelled"})`
  }
}

/** One line per job in tool output and the CLI: id, status, title, age or duration. */
export function jobLine(j: Job, now: number): string {
  const ran = (j.endedAt ?? now) - j.startedAt
  return `${j.id} · job · ${j.status === "running" ? `running ${duration(ran)}` : `${outcome(j)} after ${duration(ran)}`} · "${j.title}"`
}

/** A job's full report: what ran, how it ended, the last lines, where the whole log is. */
export function jobReport(j: Job, tail: readonly string[], logPath: string, now: number): string {
  const head =
    j.status === "running"
      ? `Job ${j.id} ("${j.title}") is running (${duration(now - j.startedAt)} so far, pid ${j.pid}).`
      : `Job ${j.id} ("${j.title}") ${outcome(j)} after ${duration((j.endedAt ?? now) - j.startedAt)}.`
  const lines = [head, `Command: ${j.command}`]
  lines.push(tail.length ? `Last ${tail.length} line(s) of output:\n${tail.join("\n")}` : "No output.")
  lines.push(`Full log: ${logPath}`)
  return lines.join("\n")
}
