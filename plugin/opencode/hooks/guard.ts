import type { Deps } from "../../deps.js"

/**
 * Wraps a hook so that its failure never reaches OpenCode: the error is logged every time and
 * shown once per hook as a toast. Hooks that must refuse something (the tool guard) throw a
 * `Refusal`, which passes through on purpose.
 */
export class Refusal extends Error {
  override name = "Refusal"
}

/** A command NSO answered itself: thrown to stop OpenCode from also running a model turn. */
export class Handled extends Error {
  override name = "Handled"
}

export function guarded<A extends unknown[]>(
  deps: Pick<Deps, "log" | "host">,
  name: string,
  fn: (...args: A) => Promise<void>,
): (...args: A) => Promise<void> {
  let toasted = false
  return async (...args: A) => {
    try {
      await fn(...args)
    } catch (err) {
      if (err instanceof Refusal || err instanceof Handled) throw err
      deps.log.log("error", `hook ${name} failed`, { error: err instanceof Error ? (err.stack ?? err.message) : String(err) })
      if (!toasted) {
        toasted = true
        void deps.host.toast(`NSO: the ${name} hook failed (${String(err).slice(0, 160)}); NSO keeps going. See .opencode/nso/nso.log`, "error").catch(() => {})
      }
    }
  }
}
