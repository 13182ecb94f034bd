import { existsSync, readdirSync, readFileSync } from "node:fs"
import { createRequire } from "node:module"
import { dirname, join } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * The page's files: ours (plugin/dashboard/page, copied beside the build) and the front-end
 * libraries, served from the installed packages — nothing comes from a CDN.
 */

export const PAGE_DIR = join(dirname(fileURLToPath(import.meta.url)), "page")

const require = createRequire(import.meta.url)

/** The folder of an installed package, found from what it resolves to. */
function packageDir(name: string): string {
  let d = dirname(require.resolve(name))
  for (let i = 0; i < 6; i++) {
    const pkg = join(d, "package.json")
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, "utf8")) as { name?: string }).name === name) return d
    d = dirname(d)
  }
  throw new Error(`the dashboard cannot find the installed package ${name}`)
}

/** Import-map name → the ES module file in its package. */
const VENDOR: Record<string, { pkg: string; file: string; url: string }> = {
  preact: { pkg: "preact", file: "dist/preact.mjs", url: "/vendor/preact.mjs" },
  "preact/hooks": { pkg: "preact", file: "hooks/dist/hooks.mjs", url: "/vendor/preact-hooks.mjs" },
  htm: { pkg: "htm", file: "dist/htm.mjs", url: "/vendor/htm.mjs" },
}

export interface Asset {
  body: string
  type: string
}

const TYPES: Record<string, string> = { js: "text/javascript; charset=utf-8", mjs: "text/javascript; charset=utf-8", css: "text/css; charset=utf-8", html: "text/html; charset=utf-8", svg: "image/svg+xml" }
const typeOf = (name: string) => TYPES[name.split(".").pop() ?? ""] ?? "application/octet-stream"

/** Read once: the files do not change while a server runs. */
export class Assets {
  private readonly files = new Map<string, Asset>()

  constructor(pageDir = PAGE_DIR) {
    for (const name of readdirSync(pageDir)) if (name !== "index.html") this.files.set(`/assets/${name}`, { body: readFileSync(join(pageDir, name), "utf8"), type: typeOf(name) })
    for (const v of Object.values(VENDOR)) this.files.set(v.url, { body: readFileSync(join(packageDir(v.pkg), v.file), "utf8"), type: typeOf(v.file) })
    this.html = readFileSync(join(pageDir, "index.html"), "utf8")
  }

  private readonly html: string

  get(path: string): Asset | undefined {
    return this.files.get(path)
  }

  /**
   * The page, with the token on every module URL through the import map (a module's own imports
   * are mapped too, so no request goes out without the token).
   */
  page(token: string, snapshot: unknown): string {
    const q = `?token=${encodeURIComponent(token)}`
    const imports: Record<string, string> = {}
    for (const [name, v] of Object.entries(VENDOR)) imports[name] = v.url + q
    for (const path of this.files.keys()) if (path.startsWith("/assets/") && path.endsWith(".js")) imports[path] = path + q
    // Every module fetched at once instead of one import level after another.
    const preload = Object.values(imports)
      .map((u) => `<link rel="modulepreload" href="${u}" />`)
      .join("\n    ")
    return this.html
      .replace("{{IMPORTMAP}}", () => JSON.stringify({ imports }))
      .replace("{{PRELOAD}}", () => preload)
      .replace("{{SNAPSHOT}}", () => inlineJson(snapshot))
      .replaceAll("{{TOKEN_QUERY}}", q)
  }
}

/** JSON safe inside a <script> element: nothing in it can close the element or start a comment. */
export function inlineJson(v: unknown): string {
  return JSON.stringify(v).replace(/</g, "\\u003c").replace(/\u2028/g, "\\u2028").replace(/\u2029/g, "\\u2029")
}
