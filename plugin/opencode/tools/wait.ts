import type { Task } from "../../protocol.js"
import type { Runtime } from "../../runtime.js"

/** The task once it ends, or as it is after `ms` (injected clock) or when the call is aborted. */
export async function endedWithin(rt: Runtime, id: string, ms: number, signal: AbortSignal): Promise<Task> {
  return (await within(rt, rt.tasks.ended(id), ms, signal)) ?? rt.tasks.get(id)!
}

/** What `p` resolves to, or undefined after `ms` (injected clock) or when the call is aborted. */
export async function within<T>(rt: Runtime, p: Promise<T>, ms: number, signal: AbortSignal): Promise<T | undefined> {
  let timer: ReturnType<typeof rt.deps.timers.setTimeout> | undefined
  let onAbort: (() => void) | undefined
  try {
    const timeout = new Promise<undefined>((r) => (timer = rt.deps.timers.setTimeout(() => r(undefined), ms)))
    const aborted = new Promise<undefined>((r) => signal.addEventListener("abort", (onAbort = () => r(undefined)), { once: true }))
    return await Promise.race([p, timeout, aborted])
  } finally {
    if (timer) rt.deps.timers.clearTimeout(timer)
    if (onAbort) signal.removeEventListener("abort", onAbort)
  }
}
