import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { definedIn } from "../../plugin/agents/load.js"
import { globalNsoDir, layerDirs, resolveUserPath, sharedDirs } from "../../plugin/agents/shared.js"
import { loadTeams, teamsOf } from "../../plugin/teams/load.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

const write = (dir: string, files: Record<string, string>) => {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  return dir
}

/** The profiles teams may name (only the names matter to loadTeams). */
const profiles = new Map<string, unknown>(["orchestrator", "builder", "scout", "review-security", "review-performance"].map((n) => [n, {}]))

const team = (name: string, extra = "") =>
  `name: ${name}\ndescription: the ${name} team\npattern: parallel\nmembers:\n  - agent: builder\n    role: builds\n  - agent: scout\n${extra}`

describe("team loading", () => {
  it("later layers win field by field across shipped, shared (global, then paths in order), project and options; rules merge one level deeper", async () => {
    const dir = write(tempDir(), {
      "shipped/review.yaml": `${team("review")}use_case: code_review\nrules:\n  max_parallel: 2\n  escalation: never\n`,
      "global/review.yml": "name: review\ndescription: from the global folder\n",
      "shared-a/teams.yaml": "teams:\n  - name: review\n    instructions: from shared a\n  - name: other\n    description: d\n    pattern: sequential\n    members: [{ agent: scout }]\n",
      "shared-b/review.yaml": "name: review\ninstructions: from shared b\nrules:\n  timeout_per_agent_ms: 1000\n",
      "project/review.yaml": "name: review\nrules:\n  max_parallel: 3\n",
    })
    const dirs = { shipped: join(dir, "shipped"), shared: [join(dir, "global"), join(dir, "shared-a"), join(dir, "shared-b")], project: join(dir, "project") }
    const { teams, origins, problems } = await loadTeams(fakeDeps(), dirs, { review: { pattern: "sequential" } }, profiles)
    expect(problems).toEqual([])
    expect(teams.get("review")).toMatchObject({
      description: "from the global folder",
      instructions: "from shared b",
      use_case: "code_review",
      pattern: "sequential",
      rules: { max_parallel: 3, escalation: "never", timeout_per_agent_ms: 1000, wait_for_all: true, max_depth: 2 },
      members: [{ agent: "builder", role: "builds" }, { agent: "scout" }],
    })
    expect(teams.get("other")!.pattern).toBe("sequential")
    const o = origins.get("review")!
    expect(o).toMatchObject({
      use_case: { layer: "shipped" },
      description: { layer: "shared", where: join(dir, "global/review.yml"), rank: 0 },
      instructions: { layer: "shared", where: join(dir, "shared-b/review.yaml"), rank: 2 },
      rules: { layer: "project" },
      pattern: { layer: "options", where: "opencode.json teams.review" },
    })
    // Where the fields in force come from: shared a's only field was overridden by shared b.
    expect(definedIn(o).map((x) => x.where)).toEqual([
      join(dir, "shipped/review.yaml"),
      join(dir, "global/review.yml"),
      join(dir, "shared-b/review.yaml"),
      join(dir, "project/review.yaml"),
      "opencode.json teams.review",
    ])
  })

  it("missing folders are skipped silently; unreadable files and folders are problems", async () => {
    const dir = write(tempDir(), { "project/ok.yaml": team("ok"), "project/secret.yaml": team("secret"), "notadir": "x" })
    // A file this user may not read (a fake: tests may run as root, who reads anything).
    const base = fakeDeps()
    const fs = {
      ...base.fs,
      readFile: ((path: string, enc: BufferEncoding) =>
        path.endsWith("secret.yaml")
          ? Promise.reject(Object.assign(new Error(`EACCES: permission denied, open '${path}'`), { code: "EACCES" }))
          : base.fs.readFile(path, enc)) as typeof base.fs.readFile,
    }
    const { teams, problems } = await loadTeams(
      { fs },
      { shipped: join(dir, "none"), shared: [join(dir, "also-none"), join(dir, "notadir")], project: join(dir, "project") },
      {},
      profiles,
    )
    expect([...teams.keys()]).toEqual(["ok"])
    expect(problems).toEqual([
      `${join(dir, "notadir")}: (folder): cannot be read: it is not a folder`,
      `${join(dir, "project/secret.yaml")}: (file): cannot be read: EACCES: permission denied, open '${join(dir, "project/secret.yaml")}'`,
    ])
  })

  it("an invalid team is reported with file and field and falls back or is left out; the others load", async () => {
    const dir = write(tempDir(), {
      "shipped/a.yaml": team("alpha"),
      "project/alpha.yaml": "name: alpha\npattern: round_robin\n",
      "project/list.yaml": `- ${team("beta").replace(/\n/g, "\n  ")}\n- name: gamma\n  description: g\n  pattern: parallel\n  members: []\n- description: nameless\n`,
      "project/delta.yaml": `${team("delta")}rules:\n  escalaton: never\n`,
      "project/broken.yaml": "name: [unclosed\n",
      "project/ignored.txt": "not a team file",
    })
    const { teams, problems } = await loadTeams(fakeDeps(), { shipped: join(dir, "shipped"), project: join(dir, "project") }, {}, profiles)
    expect(teams.get("alpha")!.pattern).toBe("parallel")
    expect(teams.has("beta")).toBe(true)
    expect(teams.has("gamma")).toBe(false)
    expect(teams.has("delta")).toBe(false)
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/project\/alpha\.yaml: pattern: /),
        expect.stringMatching(/project\/list\.yaml#2: members: a team needs at least one member/),
        expect.stringMatching(/project\/list\.yaml#3: name: every team needs a name/),
        expect.stringMatching(/project\/delta\.yaml: rules\.escalaton: not a team field \(check the spelling\)/),
        expect.stringMatching(/project\/broken\.yaml: \(file\): cannot be read as YAML/),
        'team "gamma" was not loaded: no valid definition is left',
        'team "delta" was not loaded: no valid definition is left',
      ]),
    )
  })

  it("a member or coordinator naming an unknown profile is a problem naming file, field, the name and the known profiles", async () => {
    const dir = write(tempDir(), {
      "project/t.yaml": `- name: crew\n  description: d\n  pattern: coordinator_worker\n  coordinator: boss\n  members:\n    - agent: builder\n    - agent: scout\n    - agent: wizard\n- ${team("fine").replace(/\n/g, "\n  ")}\n`,
    })
    const { teams, problems } = await loadTeams(fakeDeps(), { shipped: join(dir, "none"), project: join(dir, "project") }, {}, profiles)
    expect(teams.has("crew")).toBe(false)
    expect(teams.has("fine")).toBe(true)
    const known = "builder, orchestrator, review-performance, review-security, scout"
    expect(problems).toEqual([
      `${join(dir, "project/t.yaml#1")}: coordinator: no agent profile "boss"; known profiles: ${known}`,
      `${join(dir, "project/t.yaml#1")}: members.2.agent: no agent profile "wizard"; known profiles: ${known}`,
      'team "crew" was not loaded: fix the problem above',
    ])
  })

  it("a team with a profile's name is a problem (delegate takes either by name)", async () => {
    const { teams, problems } = await loadTeams(fakeDeps(), { shipped: "/nonexistent", project: "/nonexistent" }, { builder: { description: "d", pattern: "parallel", members: [{ agent: "scout" }] } }, profiles)
    expect(teams.size).toBe(0)
    expect(problems[0]).toBe('opencode.json teams.builder: name: team "builder" has the name of an agent profile; delegate takes either by name, so rename the team')
  })

  it("hierarchical teams: unknown sub-teams, cycles and nesting deeper than rules.max_depth are problems; a team over a left-out sub-team is left out too", async () => {
    const h = (name: string, subs: string[], rules = "") => ({
      description: `${name} team`,
      pattern: "hierarchical",
      coordinator: "orchestrator",
      members: [{ agent: "scout" }, ...subs.map((team) => ({ team }))],
      ...(rules ? { rules: { max_depth: Number(rules) } } : {}),
    })
    const leaf = { description: "leaf", pattern: "parallel", members: [{ agent: "builder" }] }
    const inline = {
      // depth: top → mid → low → leaf is 3 levels of sub-teams; max_depth 2 is exceeded, 3 is fine.
      top: h("top", ["mid"]),
      deep: h("deep", ["mid"], "3"),
      mid: h("mid", ["low"]),
      low: h("low", ["leaf"]),
      leaf,
      // cycle: ping → pong → ping; over: above the cycle; lost: names a team that does not exist.
      ping: h("ping", ["pong"]),
      pong: h("pong", ["ping"]),
      over: h("over", ["ping"]),
      lost: h("lost", ["nowhere"]),
      flat: { ...leaf, members: [{ team: "leaf" }] },
    }
    const { teams, problems } = await loadTeams(fakeDeps(), { shipped: "/nonexistent", project: "/nonexistent" }, inline, profiles)
    expect([...teams.keys()].sort()).toEqual(["deep", "leaf", "low", "mid"])
    expect(problems).toEqual(
      expect.arrayContaining([
        "opencode.json teams.flat: members.0.team: only a hierarchical team may have teams as members",
        expect.stringMatching(/^opencode\.json teams\.lost: members\.1\.team: no team "nowhere"; known teams: /),
        "opencode.json teams.ping: members.1.team: teams form a cycle: ping → pong → ping",
        "opencode.json teams.pong: members.1.team: teams form a cycle: pong → ping → pong",
        'opencode.json teams.top: members: sub-teams nest 3 levels deep under team "top", more than its rules.max_depth (2); raise rules.max_depth or flatten the teams',
        'opencode.json teams.over: members.1.team: team "ping" was not loaded (see its problem)',
        'team "over" was not loaded: fix the problem above',
      ]),
    )
  })

  it("teamsOf lists the teams an agent is in, as a member or the coordinator", async () => {
    const { teams } = await loadTeams(
      fakeDeps(),
      { shipped: "/nonexistent", project: "/nonexistent" },
      { crew: { description: "d", pattern: "coordinator_worker", coordinator: "orchestrator", members: [{ agent: "builder" }] }, pair: { description: "d", pattern: "parallel", members: [{ agent: "builder" }, { agent: "scout" }] } },
      profiles,
    )
    // A team that states no rules gets every default.
    expect(teams.get("pair")!.rules).toEqual({ wait_for_all: true, escalation: "on_failure", max_depth: 2 })
    expect(teamsOf(teams.values(), "builder")).toEqual(["crew", "pair"])
    expect(teamsOf(teams.values(), "orchestrator")).toEqual(["crew"])
    expect(teamsOf(teams.values(), "review-security")).toEqual([])
  })
})

describe("shared folders", () => {
  it("the global folder comes from XDG_CONFIG_HOME (default ~/.config), then each path: relative to the project, ~ to the home folder", () => {
    const input = { projectDir: "/work/app", home: "/home/ann", paths: ["profiles", "~/team-kit", "~", "/srv/shared/agents", "profiles"], kind: "agents" as const }
    expect(sharedDirs({ ...input, env: { XDG_CONFIG_HOME: "/xdg" } })).toEqual(["/xdg/opencode/nso/agents", "/work/app/profiles", "/home/ann/team-kit", "/home/ann", "/srv/shared/agents"])
    expect(sharedDirs({ ...input, env: {}, paths: [], kind: "teams" })).toEqual(["/home/ann/.config/opencode/nso/teams"])
    expect(globalNsoDir({ XDG_CONFIG_HOME: "" }, "/home/ann", "teams")).toBe("/home/ann/.config/opencode/nso/teams")
    expect(resolveUserPath("../kit", "/work/app", "/home/ann")).toBe("/work/kit")
    expect(layerDirs({ configDir: "/pkg/config", projectDir: "/work/app", stateDir: ".opencode/nso", agentsPaths: ["a"], teamsPaths: [], home: "/h", env: {} })).toEqual({
      agents: { shipped: "/pkg/config/agents", shared: ["/h/.config/opencode/nso/agents", "/work/app/a"], project: "/work/app/.opencode/nso/agents" },
      teams: { shipped: "/pkg/config/teams", shared: ["/h/.config/opencode/nso/teams"], project: "/work/app/.opencode/nso/teams" },
    })
  })

  it("a team in the XDG global folder loads, under the project's", async () => {
    const xdg = tempDir()
    const dir = write(tempDir(), { "project/t.yaml": "name: kit\ndescription: the project's\n" })
    write(xdg, { "opencode/nso/teams/kit.yaml": team("kit") })
    const shared = sharedDirs({ projectDir: dir, home: "/nonexistent-home", env: { XDG_CONFIG_HOME: xdg }, paths: [], kind: "teams" })
    const { teams, origins } = await loadTeams(fakeDeps(), { shipped: "/nonexistent", shared, project: join(dir, "project") }, {}, profiles)
    expect(teams.get("kit")).toMatchObject({ description: "the project's", pattern: "parallel" })
    expect(origins.get("kit")!.pattern).toEqual({ layer: "shared", where: join(xdg, "opencode/nso/teams/kit.yaml"), rank: 0 })
  })
})
