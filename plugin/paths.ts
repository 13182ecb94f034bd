import { existsSync, readFileSync } from "node:fs"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * Where the package's own files (agent_templates/, config/) are, whether running from source
 * (plugin/*.ts) or from the build (dist/plugin/*.js).
 */
export const PACKAGE_ROOT: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 5; i++) {
    const pkg = join(dir, "package.json")
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === "opencode-nso") return dir
    dir = resolve(dir, "..")
  }
  throw new Error("opencode-nso: cannot find the package root (agent_templates/ and config/ are needed)")
})()

export const TEMPLATES_DIR = join(PACKAGE_ROOT, "agent_templates")
export const CONFIG_DIR = join(PACKAGE_ROOT, "config")
