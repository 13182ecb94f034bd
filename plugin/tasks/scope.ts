import picomatch from "picomatch"
import { isAbsolute, relative } from "node:path"

/**
 * Write scopes: path globs relative to the project. A task with a scope may write only where its
 * globs match; two tasks whose scopes overlap never run at the same time.
 */

/** The part of a glob before its first wildcard, as a folder path ("src/auth/**" → "src/auth"). */
export function staticBase(glob: string): string {
  const parts = glob.replace(/^\.\//, "").split("/")
  const out: string[] = []
  for (const p of parts) {
    if (/[*?[\]{}()!]/.test(p)) break
    out.push(p)
  }
  return out.join("/")
}

const within = (a: string, b: string) => a === "" || b === "" || a === b || b.startsWith(a + "/") || a.startsWith(b + "/")

/**
 * Whether two scopes could name the same file: their fixed folder parts nest. Exact for plain
 * paths and folder globs; two wildcard globs in the same folder ("src/*.ts", "src/*.md") count
 * as overlapping, which is safe (they run one after the other).
 */
export function scopesOverlap(a: readonly string[], b: readonly string[]): boolean {
  if (!a.length || !b.length) return false
  return a.some((x) => b.some((y) => within(staticBase(x), staticBase(y))))
}

/** The project-relative form of a path a tool wants to write, or undefined if outside the project. */
export function projectPath(projectDir: string, path: string): string | undefined {
  const rel = relative(projectDir, isAbsolute(path) ? path : `${projectDir}/${path}`).replaceAll("\\", "/")
  if (rel.startsWith("../") || rel === "..") return undefined
  return rel
}

/** A glob matches the path; a glob without wildcards also covers everything under it. */
export function inScope(scope: readonly string[], rel: string): boolean {
  return scope.some((g) => {
    const clean = g.replace(/^\.\//, "").replace(/\/$/, "")
    if (staticBase(clean) === clean) return rel === clean || rel.startsWith(clean + "/")
    return picomatch(clean, { dot: true })(rel)
  })
}

/**
 * Write-scope locks: a task with a scope runs only when no running task's scope overlaps it.
 * A claim is taken before the task asks for a model slot, so waiting here holds no slot.
 */
export class ScopeLocks {
  private held = new Set<string>()

  /** Resolves once no other holder's scope overlaps this task's; then this task holds its own. */
  async claim(task: { id: string; scope: readonly string[] }, get: (id: string) => { id: string; scope: readonly string[] } | undefined, ended: (id: string) => Promise<unknown>): Promise<void> {
    for (;;) {
      const clash = [...this.held].map(get).find((t) => t && t.id !== task.id && scopesOverlap(t.scope, task.scope))
      if (!clash) {
        this.held.add(task.id)
        return
      }
      await ended(clash.id)
    }
  }

  /** Marks a task as holding its scope without checking (a task found running after a restart). */
  hold(id: string): void {
    this.held.add(id)
  }

  release(id: string): void {
    this.held.delete(id)
  }
}
