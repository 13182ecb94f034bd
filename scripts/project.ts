import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, statSync } from "node:fs"
import { homedir } from "node:os"
import { basename, dirname, isAbsolute, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"

/**
 * Which OpenCode project the `nso` command is about, which config files OpenCode reads there,
 * whether NSO is in its plugin list, and whether a server with NSO is running for it.
 *
 * OpenCode's own rule (1.18.33; its source: `Project.resolve`, `ConfigPaths.projectFiles`,
 * `ConfigPaths.directories`, `FileSystem.up`, `Config.loadInstanceState`):
 * - a project has a *directory* (the folder OpenCode was started in, or the `directory` a client
 *   names) and a *worktree*: the git work tree that contains it, or the filesystem root outside
 *   git. Plugins get the directory, so NSO's state is `<directory>/.opencode/nso/`.
 * - Config is merged from the global `~/.config/opencode/{config.json,opencode.json,opencode.jsonc}`,
 *   `$OPENCODE_CONFIG`, then every `opencode.json` / `opencode.jsonc` from the worktree down to
 *   the directory (a nearer file wins; in one folder `.jsonc` wins over `.json`), then the
 *   `opencode.json(c)` inside each `.opencode/` folder found from the directory up to the
 *   worktree. Each of those `.opencode/` folders is also a config folder: its `plugin(s)/*.{js,ts}`
 *   are loaded as plugins, and OpenCode npm-installs `@opencode-ai/plugin` into it.
 *
 * `nso` cannot know where OpenCode was started, so it takes the nearest folder, at or above the
 * current folder (or `--dir`), that has `opencode.json`, `opencode.jsonc` or `.opencode/`,
 * looking no higher than the git root (or the filesystem root outside git) — the same stop
 * OpenCode's own upward search uses.
 */

export const PACKAGE_NAME = "opencode-nso"

export class ProjectError extends Error {
  /** 2: the folder given does not exist or is not a folder (a usage error); 1: no project there. */
  constructor(
    message: string,
    readonly exitCode: 1 | 2,
  ) {
    super(message)
  }
}

export interface ConfigFile {
  path: string
  /** The parsed object, when the file could be read and parsed. */
  value?: Record<string, unknown>
  /** Why it could not be used. */
  error?: string
}

export interface Project {
  /** The folder the search started from. */
  start: string
  /** The project folder (OpenCode's directory, where NSO keeps its state). */
  dir: string
  /** What marks it as a project: `opencode.json`, `opencode.jsonc` and/or `.opencode/`. */
  markers: string[]
  /** Where the upward search stops: the git root, or the filesystem root outside git. */
  stop: string
  /** Whether `stop` is a git root. */
  git: boolean
  /** The config files OpenCode would read, in its order (later wins). Only existing ones. */
  configFiles: ConfigFile[]
  /** Config folders whose `plugin(s)/` OpenCode loads: the global one and each `.opencode/` on the way up. */
  configDirs: string[]
}

export const isDir = (p: string): boolean => {
  try {
    return statSync(p).isDirectory()
  } catch {
    return false
  }
}

/** The nearest folder at or above `start` holding `.git` (a folder, or a file in worktrees and submodules). */
export function gitRoot(start: string): string | undefined {
  for (let d = start; ; d = dirname(d)) {
    if (existsSync(join(d, ".git"))) return d
    if (dirname(d) === d) return undefined
  }
}

/** Folders from `start` up to `stop` (both included), nearest first; the filesystem root ends it too. */
function upward(start: string, stop: string): string[] {
  const out: string[] = []
  for (let d = start; ; d = dirname(d)) {
    out.push(d)
    if (d === stop || dirname(d) === d) return out
  }
}

function markersIn(dir: string): string[] {
  const m: string[] = []
  for (const f of ["opencode.json", "opencode.jsonc"]) if (existsSync(join(dir, f))) m.push(f)
  if (isDir(join(dir, ".opencode"))) m.push(".opencode/")
  return m
}

export function globalConfigDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CONFIG_HOME || join(env.HOME || homedir(), ".config"), "opencode")
}

/**
 * Finds the project for a folder (see the rule above). Throws `ProjectError` naming the folder
 * when there is none.
 */
export function findProject(startArg: string, env: NodeJS.ProcessEnv = process.env): Project {
  const start = resolve(startArg)
  if (!existsSync(start)) throw new ProjectError(`no such folder: ${start}`, 2)
  if (!isDir(start)) throw new ProjectError(`not a folder: ${start}`, 2)
  const git = gitRoot(start)
  const stop = git ?? upward(start, "/").at(-1)!
  const path = upward(start, stop)
  const dir = path.find((d) => markersIn(d).length > 0)
  if (!dir)
    throw new ProjectError(
      `no OpenCode project at or above ${start}: no opencode.json, opencode.jsonc or .opencode/ folder up to ${git ? `the git root ${stop}` : stop}. ` +
        `Run nso inside the project, or pass --dir <project folder>.`,
      1,
    )

  // The config files OpenCode reads for a project started in `dir`, in its order.
  const files: string[] = []
  const global = globalConfigDir(env)
  for (const f of ["config.json", "opencode.json", "opencode.jsonc"]) files.push(join(global, f))
  if (env.OPENCODE_CONFIG) files.push(resolve(env.OPENCODE_CONFIG))
  const between = upward(dir, stop)
  for (const d of [...between].reverse()) files.push(join(d, "opencode.json"), join(d, "opencode.jsonc"))
  const dotDirs = between.map((d) => join(d, ".opencode")).filter(isDir)
  for (const d of dotDirs) files.push(join(d, "opencode.json"), join(d, "opencode.jsonc"))
  const configDirs = [global, ...dotDirs, ...(env.OPENCODE_CONFIG_DIR ? [resolve(env.OPENCODE_CONFIG_DIR)] : [])]

  return {
    start,
    dir,
    markers: markersIn(dir),
    stop,
    git: git !== undefined,
    configFiles: files.filter((f) => existsSync(f)).map((f) => readConfig(f, env)),
    configDirs,
  }
}

// ---------------------------------------------------------------------------------------------
// JSONC: opencode.json and opencode.jsonc may hold comments and trailing commas. No JSONC parser
// is among this package's dependencies, so this is a small scanner that blanks out comments and
// drops trailing commas outside strings, then hands the text to JSON.parse.

/** Removes `//` and `/* … *\/` comments and trailing commas, leaving strings untouched. */
export function stripJsonc(text: string): string {
  let out = ""
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0
  const n = text.length
  /** Index of the next character that is neither white space nor inside a comment. */
  const nextSignificant = (from: number): number => {
    let j = from
    while (j < n) {
      const c = text[j]!
      if (c === " " || c === "\t" || c === "\n" || c === "\r") j++
      else if (c === "/" && text[j + 1] === "/") {
        while (j < n && text[j] !== "\n") j++
      } else if (c === "/" && text[j + 1] === "*") {
        const end = text.indexOf("*/", j + 2)
        j = end < 0 ? n : end + 2
      } else return j
    }
    return n
  }
  while (i < n) {
    const c = text[i]!
    if (c === '"') {
      let j = i + 1
      while (j < n && text[j] !== '"' && text[j] !== "\n") j += text[j] === "\\" ? 2 : 1
      out += text.slice(i, j + 1)
      i = j + 1
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < n && text[i] !== "\n") i++
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2)
      if (end < 0) throw new SyntaxError("a /* comment is not closed")
      // Keep line breaks so JSON.parse's positions still point at the right line.
      out += text.slice(i, end + 2).replace(/[^\n]/g, " ")
      i = end + 2
    } else if (c === ",") {
      const next = text[nextSignificant(i + 1)]
      out += next === "}" || next === "]" ? " " : ","
      i++
    } else {
      out += c
      i++
    }
  }
  return out
}

/** Parses JSON with comments and trailing commas (opencode.json / opencode.jsonc). */
export function parseJsonc(text: string): unknown {
  return JSON.parse(stripJsonc(text)) as unknown
}

export function readConfig(path: string, env: NodeJS.ProcessEnv = process.env): ConfigFile {
  let text: string
  try {
    text = readFileSync(path, "utf8")
  } catch (err) {
    return { path, error: `cannot be read: ${(err as Error).message}` }
  }
  // OpenCode substitutes {env:NAME} in the text before parsing; do the same.
  text = text.replace(/\{env:([^}]+)\}/g, (_all, name: string) => env[name] ?? "")
  try {
    const value = parseJsonc(text)
    if (typeof value !== "object" || value === null || Array.isArray(value)) return { path, error: "is not a JSON object" }
    return { path, value: value as Record<string, unknown> }
  } catch (err) {
    return { path, error: `is not valid JSON(C): ${(err as Error).message}` }
  }
}

// ---------------------------------------------------------------------------------------------
// Is NSO in the plugin list? A plugin entry is NSO when what it names *is* this package — by
// package identity, never by the letters "nso" in a path:
// - an npm spec (`opencode-nso`, `opencode-nso@0.1.0`) whose package name is opencode-nso;
// - a path (relative to its config file, absolute, or file://) to a file or folder whose
//   nearest package.json (the folder's own, or the first one above the file) is named
//   opencode-nso: a built clone (`…/nso/dist/plugin/index.js`), an installed copy
//   (`.opencode/node_modules/opencode-nso`), the source (`…/plugin/index.ts`);
// - a `*.js` / `*.ts` file in a config folder's `plugin/` or `plugins/` that imports or
//   re-exports from one of the above (`export { NsoPlugin } from "opencode-nso"`).

export interface NsoEntry {
  /** The plugin spec as written, or the plugin file's path. */
  spec: string
  /** The options object of a `[spec, options]` entry. */
  options: unknown
  /** The config file that lists it, or the plugin folder that holds it. */
  source: string
}

export interface NsoLookup {
  /** Every place that loads NSO, in OpenCode's order. */
  entries: NsoEntry[]
  /** The options OpenCode passes to NSO: the last listed entry's (a nearer config file wins). */
  options: unknown
  /** Config files that could not be read (NSO may be listed in one of them). */
  problems: string[]
}

const isPathSpec = (spec: string) => spec.startsWith("file://") || spec.startsWith(".") || isAbsolute(spec)

/** The package name of an npm spec or a bare module specifier (`@scope/name@1`, `name/sub`). */
export function packageNameOf(spec: string): string | undefined {
  const m = /^(@[^/@\s]+\/[^/@\s]+|[^/@\s]+)(?:[@/].*)?$/.exec(spec.startsWith("npm:") ? spec.slice(4) : spec)
  return m?.[1]
}

function nearestPackageName(path: string): string | undefined {
  let d = isDir(path) ? path : dirname(path)
  for (;;) {
    const pkg = join(d, "package.json")
    if (existsSync(pkg)) {
      try {
        const name = (JSON.parse(readFileSync(pkg, "utf8")) as { name?: unknown }).name
        return typeof name === "string" ? name : undefined
      } catch {
        return undefined
      }
    }
    if (dirname(d) === d) return undefined
    d = dirname(d)
  }
}

/** Whether a plugin spec written in `baseDir` (its config file's folder) names this package. */
export function specIsNso(spec: string, baseDir: string): boolean {
  if (!isPathSpec(spec)) return packageNameOf(spec) === PACKAGE_NAME
  let path: string
  try {
    path = spec.startsWith("file://") ? fileURLToPath(spec) : resolve(baseDir, spec)
  } catch {
    return false
  }
  return existsSync(path) && nearestPackageName(path) === PACKAGE_NAME
}

/** Whether a plugin file imports or re-exports NSO. */
export function pluginFileIsNso(file: string): boolean {
  let text: string
  try {
    text = readFileSync(file, "utf8")
  } catch {
    return false
  }
  const specifiers = /(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']/g
  for (const m of text.matchAll(specifiers)) {
    const s = m[1]!
    if (isPathSpec(s) ? specIsNso(s, dirname(file)) : packageNameOf(s) === PACKAGE_NAME) return true
  }
  return false
}

/** Where NSO is loaded for this project, and with which options. */
export function findNso(project: Project): NsoLookup {
  const entries: NsoEntry[] = []
  const problems: string[] = []
  for (const f of project.configFiles) {
    if (f.error) {
      problems.push(`${f.path} ${f.error}`)
      continue
    }
    const list = f.value?.plugin
    if (!Array.isArray(list)) continue
    for (const p of list) {
      const spec = Array.isArray(p) ? p[0] : p
      if (typeof spec !== "string") continue
      if (specIsNso(spec, dirname(f.path))) entries.push({ spec, options: Array.isArray(p) ? p[1] : undefined, source: f.path })
    }
  }
  for (const d of project.configDirs) {
    for (const sub of ["plugin", "plugins"]) {
      let names: string[]
      try {
        names = readdirSync(join(d, sub))
      } catch {
        continue
      }
      for (const name of names.sort())
        if (/\.(js|ts)$/.test(name) && pluginFileIsNso(join(d, sub, name))) entries.push({ spec: join(d, sub, name), options: undefined, source: join(d, sub) })
    }
  }
  const withOptions = entries.filter((e) => e.options !== undefined)
  return { entries, options: withOptions.at(-1)?.options, problems }
}

// ---------------------------------------------------------------------------------------------
// Is a server with NSO running for this project? The plugin keeps the journal
// (`<stateDir>/journal.jsonl`) open for appending for as long as it runs, so on Linux a process
// holding that file open is that server. This is truthful and cheap (one readlink per open file
// of this user's processes, ~10 ms) but sees only processes this user may inspect, and cannot tell
// at all without /proc (macOS, Windows): then it says so. A server started but not yet asked
// about this project has not started NSO yet (OpenCode starts projects lazily) and is not seen.

export interface ServerSeen {
  /** undefined: cannot tell on this system. */
  running: boolean | undefined
  pids: { pid: number; command: string }[]
  /** How this was decided, in words. */
  how: string
}

export function serverFor(journalPath: string): ServerSeen {
  if (process.platform !== "linux" || !isDir("/proc/self/fd"))
    return { running: undefined, pids: [], how: "cannot tell on this system (it looks for a process holding NSO's journal open, which needs Linux /proc)" }
  let target: string
  try {
    target = realpathSync(journalPath)
  } catch {
    return { running: false, pids: [], how: "no journal yet" }
  }
  const pids: { pid: number; command: string }[] = []
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue
    let fds: string[]
    try {
      fds = readdirSync(`/proc/${name}/fd`)
    } catch {
      continue
    }
    for (const fd of fds) {
      let link: string
      try {
        link = readlinkSync(`/proc/${name}/fd/${fd}`)
      } catch {
        continue
      }
      if (link === target) {
        let command = "?"
        try {
          command = readFileSync(`/proc/${name}/comm`, "utf8").trim()
        } catch {
          // gone meanwhile
        }
        pids.push({ pid: Number(name), command })
        break
      }
    }
  }
  return pids.length
    ? { running: true, pids, how: `${pids.map((p) => `pid ${p.pid} (${p.command})`).join(", ")} has NSO's journal open` }
    : { running: false, pids, how: `no process of this user has ${basename(dirname(target))}/${basename(target)} open` }
}
