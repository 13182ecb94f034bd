import type { Deps } from "../deps.js"
import { readLayers, resolveDefinitions, type DefinitionDirs, type DefinitionKind, type Origin } from "../agents/load.js"
import { Team } from "./team.js"

/**
 * Teams load like profiles (see agents/load.ts), from the same layers, later winning field by
 * field: the shipped `config/teams/`, the shared folders (global, then `teamsPaths`), the
 * project's `.opencode/nso/teams/`, then the `teams` option. A file holds one team, a list, or
 * `{ teams: [...] }`. `rules` merges one level deeper; `members` is replaced as a whole.
 *
 * After the schema, what a team names must exist: every member `agent` and the `coordinator` is
 * a loaded profile, every member `team` a loaded team; a team may not have a profile's name
 * (delegate resolves a name to either); sub-teams may not form a cycle, nor nest deeper than the
 * team's `rules.max_depth`. A team failing any of these is reported (file, field, what is wrong)
 * and left out — and so is a team that has it as a sub-team; every other team loads.
 */

export const TEAM_KIND: DefinitionKind = {
  noun: "team",
  label: "team",
  option: "teams",
  list: "teams",
  markdown: false,
  nested: new Set(["rules"]),
}

export interface LoadedTeams {
  teams: Map<string, Team>
  /** Where each field of each team came from: name → field → origin. */
  origins: Map<string, Record<string, Origin>>
  problems: string[]
}

const list = (names: Iterable<string>) => [...names].sort().join(", ") || "(none)"

export async function loadTeams(
  deps: Pick<Deps, "fs">,
  dirs: DefinitionDirs,
  inline: Record<string, unknown>,
  /** The loaded profiles (only their names are used). */
  profiles: ReadonlyMap<string, unknown>,
): Promise<LoadedTeams> {
  const problems: string[] = []
  const defs = await readLayers(deps, dirs, inline, TEAM_KIND, problems)
  const { values: valid, origins } = resolveDefinitions(defs, Team, TEAM_KIND, problems)

  const at = (name: string, field: string): string => (origins.get(name)?.[field] ?? origins.get(name)?.name)?.where ?? `team "${name}"`
  const out = new Set<string>()

  // What a team names on its own: profiles and teams that exist, a name of its own.
  for (const [name, t] of valid) {
    const own: string[] = []
    if (profiles.has(name))
      own.push(`${at(name, "name")}: name: team "${name}" has the name of an agent profile; delegate takes either by name, so rename the team`)
    if (t.coordinator !== undefined && !profiles.has(t.coordinator))
      own.push(`${at(name, "coordinator")}: coordinator: no agent profile "${t.coordinator}"; known profiles: ${list(profiles.keys())}`)
    t.members.forEach((m, i) => {
      if (m.agent !== undefined && !profiles.has(m.agent))
        own.push(`${at(name, "members")}: members.${i}.agent: no agent profile "${m.agent}"; known profiles: ${list(profiles.keys())}`)
      if (m.team !== undefined && !valid.has(m.team))
        own.push(`${at(name, "members")}: members.${i}.team: no team "${m.team}"; known teams: ${list([...valid.keys()].filter((n) => n !== name))}`)
    })
    if (own.length) {
      problems.push(...own)
      out.add(name)
    }
  }

  // Sub-teams: cycles, then depth (levels of sub-teams below a hierarchical team).
  const subTeams = (name: string) =>
    (valid.get(name)?.members ?? []).flatMap((m, i) => (m.team !== undefined && valid.has(m.team) ? [{ team: m.team, i }] : []))
  const inCycle = new Set<string>()
  for (const name of valid.keys()) {
    // A path from `name` back to itself, depth first.
    const path: string[] = [name]
    const seen = new Set<string>()
    const search = (n: string): boolean => {
      for (const { team } of subTeams(n)) {
        if (team === name) return true
        if (seen.has(team)) continue
        seen.add(team)
        path.push(team)
        if (search(team)) return true
        path.pop()
      }
      return false
    }
    if (search(name)) {
      inCycle.add(name)
      const first = subTeams(name).find((s) => s.team === (path[1] ?? name))!
      problems.push(`${at(name, "members")}: members.${first.i}.team: teams form a cycle: ${[...path, name].join(" → ")}`)
      out.add(name)
    }
  }
  const reachesCycle = (name: string, seen = new Set<string>()): boolean =>
    subTeams(name).some((s) => inCycle.has(s.team) || (!seen.has(s.team) && (seen.add(s.team), reachesCycle(s.team, seen))))
  const levels = new Map<string, number>()
  const levelsBelow = (name: string, visiting = new Set<string>()): number => {
    const known = levels.get(name)
    if (known !== undefined) return known
    // A team that reaches a cycle is left out below anyway; count the cycle once.
    if (visiting.has(name)) return 0
    visiting.add(name)
    const subs = subTeams(name)
    const n = subs.length ? 1 + Math.max(...subs.map((s) => levelsBelow(s.team, visiting))) : 0
    visiting.delete(name)
    levels.set(name, n)
    return n
  }
  for (const [name, t] of valid) {
    if (inCycle.has(name) || t.pattern !== "hierarchical" || reachesCycle(name)) continue
    const depth = levelsBelow(name)
    if (depth > t.rules.max_depth) {
      problems.push(
        `${at(name, "members")}: members: sub-teams nest ${depth} levels deep under team "${name}", more than its rules.max_depth (${t.rules.max_depth}); raise rules.max_depth or flatten the teams`,
      )
      out.add(name)
    }
  }

  // A team whose sub-team is left out cannot run either.
  for (let changed = true; changed; ) {
    changed = false
    for (const [name, t] of valid) {
      if (out.has(name)) continue
      const i = t.members.findIndex((m) => m.team !== undefined && out.has(m.team))
      if (i < 0) continue
      problems.push(`${at(name, "members")}: members.${i}.team: team "${t.members[i]!.team}" was not loaded (see its problem)`)
      out.add(name)
      changed = true
    }
  }

  const teams = new Map<string, Team>()
  for (const [name, t] of valid) if (!out.has(name)) teams.set(name, t)
  for (const name of out) {
    origins.delete(name)
    problems.push(`team "${name}" was not loaded: fix the problem above`)
  }
  return { teams, origins, problems }
}

/** The teams an agent takes part in (as a member or the coordinator), by name. */
export function teamsOf(teams: Iterable<Team>, agent: string): string[] {
  return [...teams].filter((t) => t.coordinator === agent || t.members.some((m) => m.agent === agent)).map((t) => t.name)
}
