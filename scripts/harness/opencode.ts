import { spawn, execFileSync, type ChildProcess } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync, copyFileSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { dirname, join, resolve } from "node:path"
import { fileURLToPath } from "node:url"
import { createOpencodeClient, type OpencodeClient } from "@opencode-ai/sdk"

/**
 * Starts a real `opencode serve` (the pinned `opencode-ai` package) on 127.0.0.1, isolated from
 * the machine: its own HOME and XDG folders, the model list fetch off, plugin dependencies
 * provisioned ahead of time so no registry is touched, NSO loaded from this repository's build.
 */

const here = dirname(fileURLToPath(import.meta.url))
/** The repository root (this file is dist/scripts/harness/opencode.js or scripts/harness/opencode.ts). */
export const REPO = [resolve(here, "../.."), resolve(here, "../../..")].find((d) => existsSync(join(d, "package.json")) && existsSync(join(d, "plugin")))!
/** The pinned OpenCode version (the `opencode-ai` devDependency). */
export const OPENCODE_VERSION = "1.18.33"

export interface OpencodeOptions {
  /** The scripted model's base URL (`…/v1`). */
  modelUrl: string
  /** NSO's options, passed as the plugin tuple's second element. */
  nso?: Record<string, unknown>
  /** Extra `opencode.json` fields. */
  config?: Record<string, unknown>
  /** Reuse a project folder (to restart a server on the same project). */
  projectDir?: string
  /** Reuse the isolated home (sessions live in XDG_DATA_HOME). */
  homeDir?: string
  /** Files to create in the project before start, path → content. */
  files?: Record<string, string>
  /** Load NSO at all (false: a bare server, for baselines). Default true. */
  plugin?: boolean
  env?: Record<string, string>
  /** How long the server may take to print its URL (ms). Default 30 s. */
  startTimeoutMs?: number
}

export interface RunningOpencode {
  url: string
  client: OpencodeClient
  projectDir: string
  homeDir: string
  process: ChildProcess
  /** Everything the server printed. */
  logs(): string
  /** Graceful stop (SIGTERM), waits for exit. */
  stop(): Promise<void>
  /** `kill -9`, waits for exit. */
  kill(): Promise<void>
  /** Stops the server and removes the temp folder this start created (if it created one). */
  dispose(): Promise<void>
}

/** Servers still running: killed if this process exits, so no test run leaves one behind. */
const live = new Set<ChildProcess>()
process.once("exit", () => {
  for (const c of live) c.kill("SIGKILL")
})

/** A folder with `@opencode-ai/plugin` installed and locked, prepared once and shared. */
export function provisionedDeps(): string {
  const dir = join(REPO, ".tmp", `opencode-deps-${OPENCODE_VERSION}`)
  if (existsSync(join(dir, "package-lock.json")) && existsSync(join(dir, "node_modules", "@opencode-ai", "plugin"))) return dir
  mkdirSync(dir, { recursive: true })
  writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true, dependencies: { "@opencode-ai/plugin": OPENCODE_VERSION } }, null, 2))
  // The npm cache already holds these from this repository's own install.
  execFileSync("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], { cwd: dir, stdio: "ignore" })
  return dir
}

/** Gives a config folder what OpenCode checks before it npm-installs there: nothing left to install. */
export function provision(configDir: string, deps: string = provisionedDeps()): void {
  mkdirSync(configDir, { recursive: true })
  copyFileSync(join(deps, "package.json"), join(configDir, "package.json"))
  copyFileSync(join(deps, "package-lock.json"), join(configDir, "package-lock.json"))
  if (!existsSync(join(configDir, "node_modules"))) symlinkSync(join(deps, "node_modules"), join(configDir, "node_modules"), "dir")
}

export function opencodeConfig(opts: Pick<OpencodeOptions, "nso" | "config" | "plugin">): Record<string, unknown> {
  const pluginPath = join(REPO, "dist", "plugin", "index.js")
  return {
    $schema: "https://opencode.ai/config.json",
    provider: {
      mock: {
        npm: "@ai-sdk/openai-compatible",
        name: "Scripted",
        options: { baseURL: "{env:MOCK_LLM_URL}", apiKey: "x" },
        models: { m: { name: "Scripted model", tool_call: true, limit: { context: 128000, output: 4096 } } },
      },
    },
    model: "mock/m",
    small_model: "mock/m",
    enabled_providers: ["mock"],
    autoupdate: false,
    share: "disabled",
    ...(opts.plugin === false ? {} : { plugin: [[pluginPath, opts.nso ?? {}]] }),
    ...opts.config,
  }
}

export async function startOpencode(opts: OpencodeOptions): Promise<RunningOpencode> {
  if (opts.plugin !== false && !existsSync(join(REPO, "dist", "plugin", "index.js")))
    throw new Error("NSO is not built: run `npm run build` first")
  // A restart reuses the first start's folders; only a start that needs new ones makes a temp root.
  const root = opts.homeDir && opts.projectDir ? undefined : mkdtempSync(join(tmpdir(), "nso-oc-"))
  const homeDir = opts.homeDir ?? join(root!, "home")
  const projectDir = opts.projectDir ?? join(root!, "project")
  const xdg = {
    XDG_CONFIG_HOME: join(homeDir, ".config"),
    XDG_DATA_HOME: join(homeDir, ".local/share"),
    XDG_CACHE_HOME: join(homeDir, ".cache"),
    XDG_STATE_HOME: join(homeDir, ".local/state"),
  }
  const deps = provisionedDeps()
  provision(join(xdg.XDG_CONFIG_HOME, "opencode"), deps)
  provision(join(projectDir, ".opencode"), deps)
  writeFileSync(join(projectDir, "opencode.json"), JSON.stringify(opencodeConfig(opts), null, 2))
  for (const [rel, content] of Object.entries(opts.files ?? {})) {
    mkdirSync(dirname(join(projectDir, rel)), { recursive: true })
    writeFileSync(join(projectDir, rel), content)
  }
  if (!existsSync(join(projectDir, ".git"))) {
    // A project root marker; OpenCode treats a folder without one as the global project.
    execFileSync("git", ["init", "-q"], { cwd: projectDir })
  }

  const bin = join(REPO, "node_modules", ".bin", "opencode")
  const child = spawn(bin, ["serve", "--hostname", "127.0.0.1", "--port", "0", "--print-logs", "--log-level", "INFO"], {
    cwd: projectDir,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: homeDir,
      ...xdg,
      MOCK_LLM_URL: opts.modelUrl,
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_CLAUDE_CODE: "1",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  })
  live.add(child)
  const exited = new Promise<void>((r) => child.once("exit", () => (live.delete(child), r())))
  let out = ""
  const startMs = opts.startTimeoutMs ?? 30_000
  const url = await new Promise<string>((resolveUrl, reject) => {
    const timer = setTimeout(() => reject(new Error(`opencode did not start within ${startMs / 1000} s:\n${out.slice(-3000)}`)), startMs)
    const onData = (d: Buffer) => {
      out += d.toString()
      const m = /opencode server listening on (http:\/\/[^\s]+)/.exec(out)
      if (m) {
        clearTimeout(timer)
        resolveUrl(m[1]!)
      }
    }
    child.stdout!.on("data", onData)
    child.stderr!.on("data", onData)
    child.once("exit", (code) => {
      clearTimeout(timer)
      reject(new Error(`opencode exited with ${code} before listening:\n${out.slice(-3000)}`))
    })
  }).catch(async (err: unknown) => {
    // A failed start leaves nothing behind either.
    child.kill("SIGKILL")
    await exited
    if (root) cleanup(root)
    throw err
  })
  const client = createOpencodeClient({ baseUrl: url, directory: projectDir })
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    await exited
  }
  return {
    url,
    client,
    projectDir,
    homeDir,
    process: child,
    logs: () => out,
    stop,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
      await exited
    },
    dispose: async () => {
      await stop()
      if (root) cleanup(root)
    },
  }
}

/** Removes a temp tree made by `startOpencode` (best effort). */
export function cleanup(dir: string): void {
  rmSync(dir, { recursive: true, force: true })
}

export function readJsonl(path: string): unknown[] {
  if (!existsSync(path)) return []
  return readFileSync(path, "utf8")
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l) as unknown)
}
