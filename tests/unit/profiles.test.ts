import { existsSync, mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { KnowledgeIndex } from "../../plugin/agents/knowledge.js"
import { definedIn, loadProfiles, promptSuffix } from "../../plugin/agents/load.js"
import { sharedDirs } from "../../plugin/agents/shared.js"
import { Profile, toolVerdict } from "../../plugin/agents/profiles.js"
import { permissionRules } from "../../plugin/opencode/permissions.js"
import { effectOf } from "../../plugin/opencode/shapes.js"

const call = (name: string) => ({ name, effect: effectOf(name) })
import { CONFIG_DIR, TEMPLATES_DIR } from "../../plugin/paths.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

const write = (dir: string, files: Record<string, string>) => {
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(join(dir, rel, ".."), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
}

describe("profile loading", () => {
  it("loads every shipped profile, valid, with its prompt file present", async () => {
    const { profiles, problems } = await loadProfiles(fakeDeps(), { shipped: join(CONFIG_DIR, "agents"), project: "/nonexistent" }, {})
    expect(problems).toEqual([])
    const names = [...profiles.keys()]
    for (const n of ["oracle", "builder", "janitor", "designer", "scout", "librarian", "profiler", "executor", "analyst", "orchestrator"]) expect(names).toContain(n)
    for (const n of ["devops-security", "devops-performance", "devops-cost", "devops-compliance", "data-engineer", "data-scientist", "data-visualization", "support-technical", "support-billing", "support-product", "review-security", "review-performance", "review-best-practices", "review-test-coverage"]) expect(names).toContain(n)
    expect(profiles.get("scout")!.permission).toEqual({ edit: "deny", bash: "deny" })
    expect(profiles.get("executor")!.permission).toEqual({ edit: "deny", bash: "allow" })
    expect(profiles.get("orchestrator")!.delegates).toBe(true)
    expect(profiles.get("oracle")!.mode).toBe("primary")
    for (const prof of profiles.values()) expect(existsSync(join(TEMPLATES_DIR, prof.prompt)), prof.prompt).toBe(true)
  })

  it("later layers win field by field; tools and permission merge one level deeper", async () => {
    const dir = tempDir()
    write(dir, {
      "shipped/a.yaml": "name: alpha\ndescription: shipped\nprompt: shipped prompt\npermission: { edit: deny, bash: deny }\n",
      "project/alpha.md": "---\ndescription: project\npermission: { bash: allow }\n---\nproject prompt body\n",
    })
    const { profiles, origins } = await loadProfiles(fakeDeps(), { shipped: join(dir, "shipped"), project: join(dir, "project") }, { alpha: { style: "technical" } })
    const a = profiles.get("alpha")!
    expect(a).toMatchObject({ description: "project", prompt: "project prompt body", style: "technical", permission: { edit: "deny", bash: "allow" } })
    expect(origins.get("alpha")).toMatchObject({
      description: { layer: "project", where: join(dir, "project/alpha.md") },
      style: { layer: "options", where: "opencode.json agents.alpha" },
    })
  })

  it("ranks where a profile was defined by layer, not by path: a project beside the package is still the project", async () => {
    // The package in <tmp>/nso, the project in <tmp>/nso-oc-1: the project's path starts with the package's.
    const dir = tempDir()
    write(dir, {
      "nso/config/agents/a.yaml": "name: alpha\ndescription: shipped\nprompt: p\n",
      "nso-oc-1/.opencode/nso/agents/alpha.yaml": "name: alpha\nstyle: technical\n",
    })
    const { origins } = await loadProfiles(fakeDeps(), { shipped: join(dir, "nso/config/agents"), project: join(dir, "nso-oc-1/.opencode/nso/agents") }, { alpha: { temperature: 0.2 } })
    expect(definedIn(origins.get("alpha")!)).toEqual([
      { layer: "shipped", where: join(dir, "nso/config/agents/a.yaml") },
      { layer: "project", where: join(dir, "nso-oc-1/.opencode/nso/agents/alpha.yaml") },
      { layer: "options", where: "opencode.json agents.alpha" },
    ])
  })

  it("shared folders rank above the shipped profiles and below the project's, in the order given; nested fields merge across them", async () => {
    const dir = tempDir()
    write(dir, {
      "shipped/a.yaml": "name: alpha\ndescription: shipped\nprompt: p\npermission: { edit: deny, bash: deny }\n",
      "xdg/opencode/nso/agents/alpha.yaml": "name: alpha\ndescription: global\nstyle: detailed\npermission: { webfetch: deny }\n",
      "project/kit/alpha.md": "---\nstyle: technical\n---\nkit prompt\n",
      "project/.opencode/nso/agents/alpha.yaml": "name: alpha\npermission: { bash: allow }\n",
      "project/.opencode/nso/agents/broken.yaml": "name: beta\nrole: wizard\n",
      "kit2/beta.yaml": "name: beta\ndescription: from kit2\nprompt: p\n",
    })
    const shared = sharedDirs({ projectDir: join(dir, "project"), home: dir, env: { XDG_CONFIG_HOME: join(dir, "xdg") }, paths: ["kit", "~/kit2", "missing"], kind: "agents" })
    expect(shared).toEqual([join(dir, "xdg/opencode/nso/agents"), join(dir, "project/kit"), join(dir, "kit2"), join(dir, "project/missing")])
    const { profiles, origins, problems } = await loadProfiles(fakeDeps(), { shipped: join(dir, "shipped"), shared, project: join(dir, "project/.opencode/nso/agents") }, { alpha: { temperature: 0.3 } })
    expect(profiles.get("alpha")).toMatchObject({ description: "global", style: "technical", prompt: "kit prompt", temperature: 0.3, permission: { edit: "deny", bash: "allow", webfetch: "deny" } })
    expect(definedIn(origins.get("alpha")!)).toEqual([
      { layer: "shipped", where: join(dir, "shipped/a.yaml") },
      { layer: "shared", where: join(dir, "xdg/opencode/nso/agents/alpha.yaml"), rank: 0 },
      { layer: "shared", where: join(dir, "project/kit/alpha.md"), rank: 1 },
      { layer: "project", where: join(dir, "project/.opencode/nso/agents/alpha.yaml") },
      { layer: "options", where: "opencode.json agents.alpha" },
    ])
    // The project's bad layer is dropped; beta falls back to the shared folder's definition.
    expect(profiles.get("beta")!.description).toBe("from kit2")
    expect(problems).toEqual([expect.stringMatching(/broken\.yaml: role: /)])
  })

  it("an invalid layer is reported with file, field and problem, and the profile falls back", async () => {
    const dir = tempDir()
    write(dir, {
      "shipped/a.yaml": "name: alpha\ndescription: fine\nprompt: p\n",
      "project/alpha.yaml": "name: alpha\nstyle: poetic\n",
      "project/beta.yaml": "name: beta\ndescription: d\nprompt: p\nrole: wizard\n",
      "project/gamma.yaml": "- name: gamma\n  description: g\n  prompt: p\n- description: nameless\n",
      "project/bad.yaml": "name: [unclosed\n",
    })
    const { profiles, problems } = await loadProfiles(fakeDeps(), { shipped: join(dir, "shipped"), project: join(dir, "project") }, {})
    expect(profiles.get("alpha")!.style).toBe("concise")
    expect(profiles.has("beta")).toBe(false)
    expect(profiles.has("gamma")).toBe(true)
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/project\/alpha\.yaml: style: .*"concise"/),
        expect.stringMatching(/project\/beta\.yaml: role: /),
        expect.stringMatching(/project\/gamma\.yaml#2: name: every profile needs a name/),
        expect.stringMatching(/project\/bad\.yaml: \(file\): cannot be read as YAML/),
        'agent "beta" was not loaded: no valid definition is left',
      ]),
    )
  })
})

describe("tool rules", () => {
  const p = (over: object) => Profile.parse({ name: "x", description: "d", prompt: "p", ...over })
  it("read-only roles may not edit or run commands; non-delegators get no Oracle tools", () => {
    const ro = p({ permission: { edit: "deny", bash: "deny" } })
    expect(toolVerdict(ro, call("write"))).toEqual({ ok: false, why: "its role may not change files" })
    expect(toolVerdict(ro, call("bash"))).toEqual({ ok: false, why: "its role may not run commands" })
    expect(toolVerdict(ro, call("read"))).toEqual({ ok: true })
    expect(toolVerdict(ro, call("delegate")).ok).toBe(false)
    expect(permissionRules(ro, true)).toMatchObject({ edit: "deny", bash: "deny", delegate: "deny" })
    expect(permissionRules(ro, true)).not.toHaveProperty("ask_user")
    expect(permissionRules(p({ delegates: true }), false)).toMatchObject({ ask_user: "deny" })
  })
  it("allowed and denied globs cover MCP tools", () => {
    const q = p({ tools: { allowed: ["read", "github_*"], denied: ["github_delete_*"] } })
    expect(toolVerdict(q, call("github_create_issue")).ok).toBe(true)
    expect(toolVerdict(q, call("github_delete_repo"))).toEqual({ ok: false, why: "its profile denies github_delete_repo" })
    expect(toolVerdict(q, call("grep"))).toEqual({ ok: false, why: "its profile allows only read, github_*" })
  })
  it("the prompt suffix carries style, escalation and specialization", () => {
    const s = promptSuffix(p({ style: "technical", specialization: "databases" }))
    expect(s).toContain("Be technical and precise")
    expect(s).toContain("escalate instead of guessing")
    expect(s).toContain("Your specialization: databases.")
  })
})

describe("knowledge", () => {
  it("adds matching runbooks within the budget, with paths; tag filters and non-matches stay out", async () => {
    const dir = tempDir()
    write(dir, {
      "kb/deploy.md": "---\ntags: [deploy]\n---\n# Deploy\n" + "d".repeat(3000),
      "kb/rollback.md": "---\ntags: [deploy, incident]\n---\n# Rollback procedure\nsteps",
      "kb/billing.md": "---\ntags: [billing]\n---\n# Billing\nrefunds",
    })
    const profiles = new Map([
      ["ops", Profile.parse({ name: "ops", description: "d", prompt: "p", knowledge: [{ folder: "kb" }] })],
      ["deployer", Profile.parse({ name: "deployer", description: "d", prompt: "p", knowledge: [{ folder: "kb", tags: ["deploy"] }] })],
    ])
    const idx = await KnowledgeIndex.build(fakeDeps(), dir, profiles)
    expect(idx.files("deployer").map((f) => f.path)).toEqual(["kb/deploy.md", "kb/rollback.md"])
    const pick = idx.select("ops", "please deploy the service; we may need a rollback", 1500)!
    expect(pick.paths).toEqual(["kb/rollback.md", "kb/deploy.md"])
    expect(pick.text.length).toBeLessThanOrEqual(1500)
    expect(pick.text).toContain("[… cut by NSO; read kb/deploy.md for the rest]")
    expect(pick.text).not.toContain("refunds")
    expect(idx.select("ops", "what is the weather", 1500)).toBeUndefined()
    expect(idx.select("deployer", "billing refunds", 1500)).toBeUndefined()
  })
})
