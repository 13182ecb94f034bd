import { existsSync, readdirSync, readFileSync } from "node:fs"
import { basename, join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse as parseYaml } from "yaml"
import { Profile } from "../../plugin/agents/profiles.js"
import { CONFIG_DIR, TEMPLATES_DIR } from "../../plugin/paths.js"
import { memberName, orderedMembers, Team } from "../../plugin/teams/team.js"

/** The shipped teams and profiles, read straight from config/ (no loader), so a broken file fails here. */

const yamlFiles = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith(".yaml") || f.endsWith(".yml"))
    .sort()
    .map((f) => join(dir, f))

const profiles = new Map<string, Profile>()
const profileFiles = new Map<string, string>()
for (const file of yamlFiles(join(CONFIG_DIR, "agents"))) {
  const raw = parseYaml(readFileSync(file, "utf8")) as unknown
  for (const item of Array.isArray(raw) ? raw : [raw]) {
    const p = Profile.parse(item)
    if (profiles.has(p.name)) throw new Error(`profile ${p.name} is defined twice (${profileFiles.get(p.name)}, ${file})`)
    profiles.set(p.name, p)
    profileFiles.set(p.name, file)
  }
}

const teamFiles = yamlFiles(join(CONFIG_DIR, "teams"))
const teams = new Map<string, { team: Team; file: string }>()
for (const file of teamFiles) {
  const r = Team.safeParse(parseYaml(readFileSync(file, "utf8")))
  if (!r.success) throw new Error(`${file}: ${r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`)
  teams.set(r.data.name, { team: r.data, file })
}

describe("shipped teams", () => {
  it("ships the predefined teams, one per file named after the team", () => {
    expect([...teams.keys()].sort()).toEqual(["code-review", "data-pipeline", "fraud-investigation", "incident-response", "security-audit", "tech-support"])
    for (const { team, file } of teams.values()) expect(basename(file).replace(/\.ya?ml$/, ""), file).toBe(team.name)
  })

  it("every team says what it is for and how it works, and every member has a role and instructions", () => {
    for (const { team } of teams.values()) {
      expect(team.description.length, team.name).toBeGreaterThan(40)
      expect(team.use_case, team.name).not.toBe("")
      expect(team.instructions.length, team.name).toBeGreaterThan(200)
      for (const m of team.members) {
        expect(m.role, `${team.name}/${memberName(m)}`).toBeTruthy()
        expect(m.instructions?.length ?? 0, `${team.name}/${memberName(m)}`).toBeGreaterThan(80)
      }
      expect(new Set(team.members.map(memberName)).size, `${team.name}: a member is listed twice`).toBe(team.members.length)
    }
  })

  it("every member agent and coordinator is a shipped profile; coordinators that must delegate can", () => {
    for (const { team } of teams.values()) {
      for (const m of team.members) if (m.agent) expect(profiles.has(m.agent), `${team.name}: member ${m.agent} is not a profile`).toBe(true)
      if (team.coordinator) {
        expect(profiles.has(team.coordinator), `${team.name}: coordinator ${team.coordinator} is not a profile`).toBe(true)
        expect(team.members.some((m) => m.agent === team.coordinator), `${team.name}: the coordinator is also a member`).toBe(false)
      }
      if (team.pattern === "coordinator_worker" || team.pattern === "hierarchical") expect(profiles.get(team.coordinator!)!.delegates, `${team.name}: ${team.coordinator} must delegate`).toBe(true)
    }
  })

  it("a hierarchical team's member teams exist, without cycles, within its max_depth", () => {
    const depth = (name: string, seen: string[]): number => {
      expect(seen, `team cycle: ${[...seen, name].join(" → ")}`).not.toContain(name)
      const t = teams.get(name)
      expect(t, `member team ${name} does not exist`).toBeDefined()
      const subs = t!.team.members.filter((m) => m.team).map((m) => m.team!)
      return subs.length ? 1 + Math.max(...subs.map((s) => depth(s, [...seen, name]))) : 0
    }
    let hierarchical = 0
    for (const { team } of teams.values()) {
      if (team.pattern !== "hierarchical") continue
      hierarchical++
      expect(team.members.some((m) => m.team), `${team.name}: a hierarchical team without a sub-team`).toBe(true)
      expect(depth(team.name, []), team.name).toBeLessThanOrEqual(team.rules.max_depth)
    }
    expect(hierarchical).toBeGreaterThan(0)
  })

  it("a sequential team runs in a definite order, and asks each member for its artifacts", () => {
    for (const { team } of teams.values()) {
      if (team.pattern !== "sequential") continue
      const prios = team.members.map((m) => m.priority)
      expect(prios.every((p) => p !== undefined), team.name).toBe(true)
      expect(new Set(prios).size, team.name).toBe(prios.length)
      for (const m of team.members) expect(m.instructions, `${team.name}/${memberName(m)}`).toContain("Artifacts:")
    }
    expect(orderedMembers(teams.get("data-pipeline")!.team).map(memberName)).toEqual(["data-engineer", "data-sql", "data-scientist", "data-visualization"])
  })
})

describe("shipped profiles the teams use", () => {
  it("every prompt file a profile names exists in agent_templates/", () => {
    for (const p of profiles.values()) if (p.prompt.endsWith(".md")) expect(existsSync(join(TEMPLATES_DIR, p.prompt)), `${p.name}: ${p.prompt}`).toBe(true)
  })

  it("coordinators delegate and cannot change anything; their prompts ask for a Disagreements: section", () => {
    for (const name of ["incident-commander", "review-lead", "security-auditor"]) {
      const p = profiles.get(name)!
      expect(p, name).toBeDefined()
      expect(p.role).toBe("coordinator")
      expect(p.delegates).toBe(true)
      expect(p.permission).toMatchObject({ edit: "deny", bash: "deny" })
      const prompt = readFileSync(join(TEMPLATES_DIR, p.prompt), "utf8")
      expect(prompt, name).toContain("`delegate`")
      expect(prompt, name).toContain("`Disagreements:`")
      expect(prompt, name).toContain("`Disagreements: none`")
    }
  })

  it("the read-only specialists may not edit", () => {
    for (const name of ["support-kb", "fraud-transactions", "fraud-patterns", "fraud-risk", "fraud-compliance"]) {
      expect(profiles.get(name)?.permission.edit, name).toBe("deny")
      expect(profiles.get(name)?.delegates, name).toBe(false)
    }
    expect(profiles.has("data-sql")).toBe(true)
  })
})
