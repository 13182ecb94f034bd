import { execFile } from "node:child_process"
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { promisify } from "node:util"
import { describe, expect, it, onTestFinished } from "vitest"
import { OPENCODE_VERSION, REPO, type RunningOpencode } from "../../scripts/harness/opencode.js"
import { ownServers, until } from "./helpers.js"
import { LIMITS, remainingMs } from "./limits.js"

/**
 * The install route README documents ("Add it to an OpenCode project"), end to end: `npm pack`
 * this repository, install the tarball into a project's `.opencode/` without network, point
 * opencode.json at the installed package, start a real `opencode serve`, and see NSO work from
 * the installed copy; `npx nso` runs from the installed copy too.
 */

const execFileP = promisify(execFile)


async function sh(cmd: string, args: string[], cwd: string): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const r = await execFileP(cmd, args, { cwd, timeout: remainingMs(), maxBuffer: 16 << 20, env: { ...process.env, npm_config_update_notifier: "false", npm_config_fund: "false" } })
    return { stdout: r.stdout, stderr: r.stderr, code: 0 }
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string; code?: number | string }
    if (typeof e.code !== "number") throw err
    return { stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code }
  }
}

/**
 * A provisioned `.opencode/`: a package.json naming `@opencode-ai/plugin` (OpenCode's own
 * dependency of every config folder) and a lock seeded with this repository's locked runtime
 * packages, so `npm install --offline <tarball>` resolves every dependency from the npm cache
 * `npm ci` filled (without a lock npm needs registry metadata that `npm ci` does not cache).
 */
function provisionDotOpencode(dir: string): void {
  mkdirSync(dir, { recursive: true })
  const repoLock = JSON.parse(readFileSync(join(REPO, "package-lock.json"), "utf8")) as { packages: Record<string, { dev?: boolean }> }
  const packages = Object.fromEntries(Object.entries(repoLock.packages).filter(([k, v]) => k !== "" && !v.dev))
  const deps = { "@opencode-ai/plugin": OPENCODE_VERSION }
  writeFileSync(join(dir, "package.json"), JSON.stringify({ private: true, dependencies: deps }, null, 2))
  writeFileSync(join(dir, "package-lock.json"), JSON.stringify({ lockfileVersion: 3, requires: true, packages: { "": { dependencies: deps }, ...packages } }, null, 2))
}

describe("the npm package", () => {
  it(
    "packs without bench, demo or harness, installs offline into .opencode/, and OpenCode loads NSO from there",
    async () => {
      if (!existsSync(join(REPO, "dist", "plugin", "index.js"))) throw new Error("NSO is not built: run `npm run build` first")
      const servers = ownServers()
      const work = mkdtempSync(join(tmpdir(), "nso-package-"))
      let oc: RunningOpencode | undefined
      onTestFinished(async () => {
        await oc?.dispose().catch(() => {})
        rmSync(work, { recursive: true, force: true })
      })

      // 1. Pack, and look at what ships.
      const packDir = join(work, "pack")
      mkdirSync(packDir)
      const packed = await sh("npm", ["pack", "--json", "--pack-destination", packDir], REPO)
      expect(packed.code, packed.stderr).toBe(0)
      const [info] = JSON.parse(packed.stdout) as { filename: string; size: number; entryCount: number; files: { path: string }[] }[]
      const paths = info!.files.map((f) => f.path)
      for (const needed of ["package.json", "README.md", "dist/plugin/index.js", "dist/plugin/index.d.ts", "dist/scripts/nso.js", "dist/scripts/project.js", "dist/scripts/job-commands.js", "config/defaults.yaml", "agent_templates/oracle.md", "dist/plugin/dashboard/page/index.html", "dist/plugin/dashboard/page/app.js"])
        expect(paths).toContain(needed)
      const unwanted = paths.filter((p) => /^(tests|scripts|plugin)\/|^dist\/scripts\/(bench|demo|harness|gen-schema)|^dist\/tests\/|\.map$|^\.tmp\//.test(p))
      expect(unwanted).toEqual([])

      // 2. Install the tarball into the project's .opencode/, offline.
      const projectDir = join(work, "project")
      const dot = join(projectDir, ".opencode")
      provisionDotOpencode(dot)
      const tarball = join(packDir, info!.filename)
      const installed = await sh("npm", ["install", "--offline", "--no-audit", "--no-fund", "--ignore-scripts", tarball], dot)
      expect(installed.code, installed.stderr).toBe(0)
      const nsoDir = join(dot, "node_modules", "opencode-nso")
      expect(existsSync(join(nsoDir, "dist", "plugin", "index.js"))).toBe(true)
      // OpenCode npm-installs into a config folder unless its lock lists every dependency of its
      // package.json and @opencode-ai/plugin: after this install there is nothing left to install.
      const pkg = JSON.parse(readFileSync(join(dot, "package.json"), "utf8")) as { dependencies: Record<string, string> }
      const lock = JSON.parse(readFileSync(join(dot, "package-lock.json"), "utf8")) as { packages: Record<string, { dependencies?: Record<string, string> }> }
      const locked = Object.keys(lock.packages[""]?.dependencies ?? {})
      expect(locked).toEqual(expect.arrayContaining([...Object.keys(pkg.dependencies), "@opencode-ai/plugin", "opencode-nso"]))

      // 3. The CLI runs from the installed copy (npx resolves .opencode/node_modules/.bin/nso).
      const helpOut = await sh("npx", ["--offline", "nso", "--help"], dot)
      expect(helpOut.code, helpOut.stderr).toBe(0)
      expect(helpOut.stdout).toContain("Commands:")
      const before = await sh("npx", ["--offline", "nso", "status", "--dir", projectDir], dot)
      expect(before.code).toBe(1)
      expect(before.stderr).toContain(`No NSO state in ${projectDir} (.opencode/nso/ not found)`)

      // A marker in the installed copy's Oracle prompt proves which copy OpenCode loaded.
      appendFileSync(join(nsoDir, "agent_templates", "oracle.md"), "\nMARKER-INSTALLED-COPY\n")

      // 4. A real server with the entry README shows: a path to the installed package's folder.
      oc = await servers.start({
        plugin: false,
        projectDir,
        config: { plugin: [["./.opencode/node_modules/opencode-nso", { init: { sweepDelayMs: 100 } }]] },
      })
      const { model } = servers
      const s = (await oc.client.session.create({ body: { title: "package" } })).data!
      await oc.client.session.prompt({ path: { id: s.id }, body: { agent: "oracle", parts: [{ type: "text", text: "package check" }] } })
      const req = await model.waitFor((r) => !r.isTitle && r.lastUser.includes("package check"), { what: "the Oracle's model request" })
      expect(req.tools).toContain("delegate")
      expect(req.system).toContain("MARKER-INSTALLED-COPY")
      await until(() => existsSync(join(projectDir, ".opencode", "nso", "journal.jsonl")), "NSO's journal in the project")
      // The dashboard serves its page and the front-end libraries from the installed copy.
      const dashUrl = await until(() => existsSync(join(projectDir, ".opencode", "nso", "dashboard.url")) && readFileSync(join(projectDir, ".opencode", "nso", "dashboard.url"), "utf8").trim(), "the dashboard URL")
      expect((await fetch(dashUrl)).status).toBe(200)
      expect((await fetch(`${new URL(dashUrl).origin}/vendor/preact.mjs?token=${new URL(dashUrl).searchParams.get("token")}`)).status).toBe(200)

      // 5. The installed CLI, from a subfolder, finds the project and sees the running server.
      mkdirSync(join(projectDir, "src", "deep"), { recursive: true })
      const status = await sh("npx", ["--offline", "nso", "status", "--dir", join(projectDir, "src", "deep")], dot)
      expect(status.code, status.stderr).toBe(0)
      expect(status.stdout).toContain(`Project: ${projectDir} (found from ${join(projectDir, "src", "deep")})`)
      expect(status.stdout).toContain("NSO plugin: ./.opencode/node_modules/opencode-nso (opencode.json)")
      expect(status.stdout).toMatch(/OpenCode server with NSO: running \(pid \d+/)
    },
    LIMITS.ownServersTestMs,
  )
})
