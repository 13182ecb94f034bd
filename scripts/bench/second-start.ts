import { execFileSync, spawn } from "node:child_process"
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { createOpencodeClient } from "@opencode-ai/sdk"
import { REPO, opencodeConfig, provision } from "../harness/opencode.js"
import { fmtMs, percentile, type Row } from "./util.js"

/**
 * OpenCode's *second* start in a project, with and without NSO (issue 9: "NSO's first run creates
 * .opencode/; on the next start OpenCode npm-installs into that folder").
 *
 * Why it can differ (OpenCode 1.18.33, `Config.loadInstanceState` and `Npm.install`): at every
 * project start OpenCode walks from the project folder up to the git root collecting `.opencode/`
 * folders, writes a `.gitignore` into each and npm-installs `@opencode-ai/plugin` into each one
 * that has no `node_modules/`, or whose `package-lock.json` does not list every dependency of its
 * `package.json` plus `@opencode-ai/plugin`. With any plugin configured, plugins are loaded only
 * after those installs end (`waitForDependencies`), and the first request that names the project
 * waits for the plugins. A project without `.opencode/` has nothing to install. NSO's first start
 * creates `.opencode/nso/` and `.opencode/context/`, so from the second start on OpenCode installs
 * there: online that is a download, offline it waits for npm's retries to give up.
 *
 * Each scenario gets a fresh isolated home whose global config folder is already provisioned
 * (as after a user's first OpenCode run, the same with or without NSO) and a fresh git project
 * with the scripted-model config. The project is started once, stopped, then started again; the
 * figure is the second start: spawning `opencode serve` → the answer to the first request that
 * names the project (the moment a client can show the project).
 *
 * Scenarios:
 * - `without NSO`: no plugin, no `.opencode/`.
 * - `NSO by path, .opencode/ left to OpenCode (offline)`: `"plugin": [[<this build>, {}]]`, the
 *   npm registry unreachable (`npm_config_registry` → a closed port on 127.0.0.1).
 * - the same online (opt-in: `online: true`; OpenCode downloads `@opencode-ai/plugin` and its
 *   dependencies from the real registry into the temp project, with an empty npm cache).
 * - `NSO, README route`: `.opencode/` holds `package.json`, `package-lock.json` and
 *   `node_modules/` listing `@opencode-ai/plugin` (what `npm install --prefix .opencode
 *   @opencode-ai/plugin@<version> <nso tarball>` leaves; here the harness's provisioned copy,
 *   which is the same to OpenCode's check), NSO by path. Nothing to install.
 *
 * - `NSO by path, state outside .opencode/`: the same entry with `stateDir: ".nso/state"` and
 *   `init.contextDir: ".nso/context"`, so NSO never creates `.opencode/` (what moving NSO's
 *   default folders out of `.opencode/` would give).
 *
 * Wire it into `scripts/bench.ts` as a section, e.g.
 * `"second-start": () => secondStartBench()`.
 */

/** A port nothing listens on: npm's requests fail at once and npm retries, as offline. */
const OFFLINE_REGISTRY = "http://127.0.0.1:9/"

type Scenario = "without" | "nso-offline" | "nso-online" | "nso-readme" | "nso-outside"


interface Started {
  /** spawn → the first request naming the project answered (ms). */
  ms: number
  logs: string
}

async function startOnce(projectDir: string, homeDir: string, env: Record<string, string>, limitMs: number): Promise<Started> {
  const bin = join(REPO, "node_modules", ".bin", "opencode")
  const t0 = performance.now()
  const child = spawn(bin, ["serve", "--hostname", "127.0.0.1", "--port", "0", "--print-logs", "--log-level", "INFO"], {
    cwd: projectDir,
    env: {
      PATH: process.env.PATH ?? "/usr/bin:/bin",
      HOME: homeDir,
      XDG_CONFIG_HOME: join(homeDir, ".config"),
      XDG_DATA_HOME: join(homeDir, ".local/share"),
      XDG_CACHE_HOME: join(homeDir, ".cache"),
      XDG_STATE_HOME: join(homeDir, ".local/state"),
      MOCK_LLM_URL: "http://127.0.0.1:9/v1",
      OPENCODE_DISABLE_MODELS_FETCH: "1",
      OPENCODE_DISABLE_AUTOUPDATE: "1",
      OPENCODE_DISABLE_SHARE: "1",
      OPENCODE_DISABLE_LSP_DOWNLOAD: "1",
      OPENCODE_DISABLE_CLAUDE_CODE: "1",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  })
  const exited = new Promise<void>((r) => child.once("exit", () => r()))
  let out = ""
  const onData = (d: Buffer) => void (out += d.toString())
  child.stdout!.on("data", onData)
  child.stderr!.on("data", onData)
  let timer: NodeJS.Timeout | undefined
  try {
    const answered = (async () => {
      let url: string | undefined
      while (!url) {
        url = /opencode server listening on (http:\/\/[^\s]+)/.exec(out)?.[1]
        if (child.exitCode !== null) throw new Error(`opencode exited with ${child.exitCode}:\n${out.slice(-2000)}`)
        if (!url) await new Promise((r) => setTimeout(r, 10))
      }
      const client = createOpencodeClient({ baseUrl: url, directory: projectDir })
      const r = await client.session.list()
      if (r.error) throw new Error(`session.list failed: ${JSON.stringify(r.error)}`)
      return performance.now() - t0
    })()
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${limitMs / 1000} s:\n${out.slice(-2000)}`)), limitMs)
    })
    const ms = await Promise.race([answered, limit])
    return { ms, logs: out }
  } finally {
    clearTimeout(timer)
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM")
    await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))])
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL")
    await exited
  }
}

interface ScenarioResult {
  first: number
  second: number
  /** What OpenCode did in .opencode/ on the second start, as far as its log and the folder tell. */
  seen: string
}

async function runScenario(kind: Scenario, limitMs: number): Promise<ScenarioResult> {
  const root = mkdtempSync(join(tmpdir(), "nso-2nd-"))
  try {
    const homeDir = join(root, "home")
    const projectDir = join(root, "project")
    provision(join(homeDir, ".config", "opencode"))
    mkdirSync(projectDir, { recursive: true })
    execFileSync("git", ["init", "-q"], { cwd: projectDir })
    const plugin = kind !== "without"
    const cfg = opencodeConfig({ plugin: false })
    const nsoOptions = kind === "nso-outside" ? { stateDir: ".nso/state", init: { contextDir: ".nso/context" } } : {}
    if (plugin) cfg.plugin = [[join(REPO, "dist", "plugin", "index.js"), nsoOptions]]
    writeFileSync(join(projectDir, "opencode.json"), JSON.stringify(cfg, null, 2))
    if (kind === "nso-readme") provision(join(projectDir, ".opencode"))
    const env: Record<string, string> = kind === "nso-online" ? {} : { npm_config_registry: OFFLINE_REGISTRY }
    const first = await startOnce(projectDir, homeDir, env, limitMs)
    const second = await startOnce(projectDir, homeDir, env, limitMs)
    // Offline, does a failed install leave anything behind, or does every start wait again?
    const third = kind === "nso-offline" ? await startOnce(projectDir, homeDir, env, limitMs) : undefined
    const dotOpencode = join(projectDir, ".opencode")
    const installed = existsSync(join(dotOpencode, "node_modules", "@opencode-ai", "plugin"))
    const failed = /background dependency install failed/.test(second.logs)
    const seen = !existsSync(dotOpencode)
      ? "no .opencode/"
      : kind === "nso-readme"
        ? "nothing to install"
        : failed
          ? `install into .opencode/ failed (${installed ? "" : "nothing installed; "}it is tried again at every start)`
          : installed
            ? "installed @opencode-ai/plugin into .opencode/"
            : `.opencode/ holds ${readdirSync(dotOpencode).join(", ")}`
    return { first: first.ms, second: second.ms, seen: third ? `${seen}; third start ${fmtMs(third.ms)}` : seen }
  } finally {
    rmSync(root, { recursive: true, force: true })
  }
}

/**
 * Second-start rows. The fast scenarios run `runs` times, interleaved (one of each per round, so
 * a change in the machine's load hits all alike; median reported); the slow ones (OpenCode
 * waiting for npm) run once. `online` adds the scenario that lets OpenCode download from the real
 * npm registry; `onlyOnline` runs the baseline and that one only.
 */
export async function secondStartBench(opts: { runs?: number; online?: boolean; onlyOnline?: boolean; limitMs?: number } = {}): Promise<Row[]> {
  const runs = opts.runs ?? 3
  const limitMs = opts.limitMs ?? 300_000
  if (!existsSync(join(REPO, "dist", "plugin", "index.js"))) throw new Error("NSO is not built: run `npm run build` first")
  const fast: [Scenario, string][] = [
    ["without", "without NSO"],
    ["nso-readme", "with NSO, installed as README says (.opencode/ provisioned)"],
    ["nso-outside", "with NSO by path, its state outside .opencode/"],
  ]
  const slow: [Scenario, string][] = [["nso-offline", "with NSO by path, nothing in .opencode/ (offline)"]]
  if (opts.onlyOnline) fast.splice(1), slow.splice(0)
  if (opts.online || opts.onlyOnline) slow.push(["nso-online", "with NSO by path, nothing in .opencode/ (online)"])
  const results = new Map<Scenario, ScenarioResult[]>()
  const once = async (kind: Scenario, label: string, round: string) => {
    process.stderr.write(`second-start: ${label} (${round})…\n`)
    const r = await runScenario(kind, limitMs)
    results.set(kind, [...(results.get(kind) ?? []), r])
  }
  for (let i = 0; i < runs; i++) for (const [kind, label] of fast) await once(kind, label, `${i + 1}/${runs}`)
  for (const [kind, label] of slow) await once(kind, label, "1/1")
  const base = percentile(results.get("without")!.map((r) => r.second), 50)
  return [...fast, ...slow].map(([kind, label]) => {
    const rs = results.get(kind)!
    const seconds = rs.map((r) => r.second)
    return {
      section: "second start",
      figure: `OpenCode 2nd start → first answer, ${label}`,
      value: fmtMs(percentile(seconds, 50)),
      target: kind === "without" ? undefined : `≤ without NSO (${fmtMs(base)})`,
      note: `first start ${fmtMs(percentile(rs.map((r) => r.first), 50))}; ${rs.at(-1)!.seen}${rs.length > 1 ? `; runs ${seconds.map(fmtMs).join(", ")}` : ""}`,
    }
  })
}

// `node dist/scripts/bench/second-start.js [--runs N] [--online | --only-online]` runs it alone
// (`--only-online`: the baseline and the online scenario only).
if (process.argv[1] && /second-start\.[jt]s$/.test(process.argv[1])) {
  const { printTable } = await import("./util.js")
  const runs = process.argv.includes("--runs") ? Number(process.argv[process.argv.indexOf("--runs") + 1]) : undefined
  printTable(await secondStartBench({ runs, online: process.argv.includes("--online"), onlyOnline: process.argv.includes("--only-online") }))
}
