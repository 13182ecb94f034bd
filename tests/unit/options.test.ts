import { describe, expect, it } from "vitest"
import { DEFAULT_OPTIONS, mergeLayers, resolveOptions } from "../../plugin/options.js"

describe("options", () => {
  it("later layers win field by field; arrays are replaced", () => {
    const { options, problems } = resolveOptions([
      { origin: "config/defaults.yaml", value: { buffer: { pauseMs: 2000, maxHoldMs: 60000 }, router: { intents: [{ name: "a", agent: "x", keywords: ["k"] }] } } },
      { origin: ".opencode/nso.yaml", value: { buffer: { pauseMs: 500 } } },
      { origin: "opencode.json plugin options", value: { router: { intents: [] } } },
    ])
    expect(problems).toEqual([])
    expect(options.buffer.pauseMs).toBe(500)
    expect(options.buffer.maxHoldMs).toBe(60000)
    expect(options.router.intents).toEqual([])
  })

  it("a bad layer is reported with its file and field, and the others still apply", () => {
    const { options, problems } = resolveOptions([
      { origin: ".opencode/nso.yaml", value: { buffer: { pauseMs: "soon" } } },
      { origin: "opencode.json plugin options", value: { buffer: { maxSize: 5 } } },
    ])
    expect(problems).toHaveLength(1)
    expect(problems[0]).toMatch(/^\.opencode\/nso\.yaml: buffer\.pauseMs: .*expected number/)
    expect(options.buffer.pauseMs).toBe(DEFAULT_OPTIONS.buffer.pauseMs)
    expect(options.buffer.maxSize).toBe(5)
  })

  it("rejects unknown keys so typos do not pass silently", () => {
    const { problems } = resolveOptions([{ origin: "x.yaml", value: { bufer: {} } }])
    expect(problems).toEqual(["x.yaml: bufer: not an NSO option (check the spelling)"])
  })

  it("one bad setting is dropped alone: the rest of its layer still applies, each problem is reported", () => {
    const { options, problems } = resolveOptions([
      { origin: "opencode.json plugin options", value: { buffer: { pauseMs: 500, maxSize: -1, pausMs: 3 }, tasks: { concurrency: 5, closePolicy: "sometimes" }, logLevel: "info" } },
    ])
    expect(problems).toHaveLength(3)
    expect(problems).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^opencode\.json plugin options: buffer\.maxSize: .*expected number to be >0/),
        "opencode.json plugin options: buffer.pausMs: not an NSO option (check the spelling)",
        expect.stringMatching(/^opencode\.json plugin options: tasks\.closePolicy: .*"ask"/),
      ]),
    )
    expect(options.buffer.pauseMs).toBe(500)
    expect(options.buffer.maxSize).toBe(DEFAULT_OPTIONS.buffer.maxSize)
    expect(options.tasks.concurrency).toBe(5)
    expect(options.tasks.closePolicy).toBe("ask")
    expect(options.logLevel).toBe("info")
  })

  it("shared folders and inline teams: lists of paths, name → team fields", () => {
    expect(DEFAULT_OPTIONS).toMatchObject({ agentsPaths: [], teamsPaths: [], teams: {} })
    const { options, problems } = resolveOptions([
      { origin: ".opencode/nso.yaml", value: { agentsPaths: ["~/kit"], teamsPaths: ["a", "b"] } },
      { origin: "opencode.json plugin options", value: { teamsPaths: ["c"], teams: { squad: { pattern: "parallel" } }, agentsPaths: "oops" } },
    ])
    expect(options).toMatchObject({ agentsPaths: ["~/kit"], teamsPaths: ["c"], teams: { squad: { pattern: "parallel" } } })
    expect(problems).toEqual([expect.stringMatching(/^opencode\.json plugin options: agentsPaths: .*expected array/)])
  })

  it("rejects a layer that is not an object", () => {
    const { problems } = resolveOptions([{ origin: "x.yaml", value: "unparseable YAML: bad indent" }])
    expect(problems[0]).toBe("x.yaml: (root): expected an object of NSO options, got string")
  })

  it("merge does not mutate its inputs", () => {
    const a = { b: { c: 1 } }
    mergeLayers(a, { b: { d: 2 } })
    expect(a).toEqual({ b: { c: 1 } })
  })
})

describe("options JSON Schema", () => {
  it("is generated from the zod schema, with defaults and descriptions for editors", async () => {
    const { optionsJsonSchema } = await import("../../scripts/gen-schema.js")
    const schema = optionsJsonSchema() as { properties: Record<string, { properties?: Record<string, { default?: unknown; description?: string }> }>; additionalProperties?: boolean }
    expect(schema.properties.buffer!.properties!.pauseMs).toMatchObject({ default: 2000, description: expect.stringContaining("milliseconds") })
    expect(schema.properties.tasks!.properties!.closePolicy).toMatchObject({ default: "ask" })
    expect(schema.additionalProperties).toBe(false)
    for (const key of ["agentsPaths", "teamsPaths", "teams"])
      expect(schema.properties[key], key).toMatchObject({ default: key === "teams" ? {} : [], description: expect.stringContaining(key === "teams" ? "Teams" : "Shared folders") })
  })

  it("the committed config/options.schema.json is the generated one", async () => {
    const { optionsJsonSchema } = await import("../../scripts/gen-schema.js")
    const { readFileSync } = await import("node:fs")
    const { join } = await import("node:path")
    const { CONFIG_DIR } = await import("../../plugin/paths.js")
    expect(JSON.parse(readFileSync(join(CONFIG_DIR, "options.schema.json"), "utf8"))).toEqual(optionsJsonSchema())
  })
})

describe("loading a project's options", () => {
  it("reads the shipped defaults and the project file, reports a file that is not YAML, and applies inline options", async () => {
    const { loadOptions } = await import("../../plugin/options.js")
    const { mkdirSync, writeFileSync } = await import("node:fs")
    const { join } = await import("node:path")
    const { fakeDeps, tempDir } = await import("../helpers/fake-deps.js")
    const dir = tempDir()
    mkdirSync(join(dir, ".opencode"))
    writeFileSync(join(dir, ".opencode/nso.yaml"), "buffer: [unclosed\n")
    const r = await loadOptions(fakeDeps(), dir, { stateDir: ".nso-state" })
    expect(r.problems).toEqual([expect.stringMatching(/\.opencode\/nso\.yaml: line 1: not valid YAML: .*The line reads: "buffer: \[unclosed"$/)])
    expect(r.options.stateDir).toBe(".nso-state")
    // The shipped defaults were applied (intent rules live only there).
    expect(r.options.router.intents.map((i) => i.name)).toContain("build")
  })
})
