import { isAbsolute, join, resolve } from "node:path"

/**
 * Shared folders of profiles and teams: the ones a person keeps outside any one project and
 * uses in several. Pure: the caller passes the environment and home folder; the loaders get only
 * the resulting list of folders (a folder that does not exist is skipped by them, silently).
 *
 * In precedence order, lowest first:
 *   1. the user's global OpenCode config folder: `$XDG_CONFIG_HOME/opencode/nso/<kind>`
 *      (`XDG_CONFIG_HOME` defaults to `~/.config`, as OpenCode's own global config does),
 *   2. each entry of the `agentsPaths` / `teamsPaths` option, in the order written: a relative
 *      path is relative to the project folder, `~` and `~/…` to the home folder.
 * All of them rank above the shipped `config/<kind>` and below the project's `.opencode/nso/<kind>`.
 */

export type SharedKind = "agents" | "teams"

export interface SharedDirsInput {
  projectDir: string
  home: string
  env: Readonly<Record<string, string | undefined>>
  /** The `agentsPaths` or `teamsPaths` option. */
  paths: readonly string[]
  kind: SharedKind
}

/** `~` and `~/…` against `home`, a relative path against `projectDir`; absolute paths as they are. */
export function resolveUserPath(path: string, projectDir: string, home: string): string {
  if (path === "~") return home
  if (path.startsWith("~/")) return join(home, path.slice(2))
  return isAbsolute(path) ? resolve(path) : resolve(projectDir, path)
}

/** The global OpenCode config folder's NSO sub-folder for `kind`. */
export function globalNsoDir(env: SharedDirsInput["env"], home: string, kind: SharedKind): string {
  return join(env.XDG_CONFIG_HOME || join(home, ".config"), "opencode", "nso", kind)
}

/** The shared folders for `kind`, lowest precedence first; a folder named twice counts once (its first place). */
export function sharedDirs(input: SharedDirsInput): string[] {
  const all = [globalNsoDir(input.env, input.home, input.kind), ...input.paths.map((p) => resolveUserPath(p, input.projectDir, input.home))]
  return [...new Set(all)]
}

export interface LayerDirs {
  shipped: string
  shared: string[]
  project: string
}

/**
 * Every folder profiles and teams load from, for a project: what `loadProfiles` and `loadTeams`
 * take. `configDir` is the package's `config/`; `stateDir` the project's NSO state folder option.
 */
export function layerDirs(input: {
  configDir: string
  projectDir: string
  stateDir: string
  agentsPaths: readonly string[]
  teamsPaths: readonly string[]
  home: string
  env: SharedDirsInput["env"]
}): { agents: LayerDirs; teams: LayerDirs } {
  const { configDir, projectDir, stateDir, home, env } = input
  const dirs = (kind: SharedKind, paths: readonly string[]): LayerDirs => ({
    shipped: join(configDir, kind),
    shared: sharedDirs({ projectDir, home, env, paths, kind }),
    project: join(projectDir, stateDir, kind),
  })
  return { agents: dirs("agents", input.agentsPaths), teams: dirs("teams", input.teamsPaths) }
}
