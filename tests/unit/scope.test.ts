import { describe, expect, it } from "vitest"
import { inScope, projectPath, scopesOverlap, staticBase } from "../../plugin/tasks/scope.js"
import { writeTargets } from "../../plugin/opencode/shapes.js"

describe("write scopes", () => {
  it("static base", () => {
    expect(staticBase("src/auth/**")).toBe("src/auth")
    expect(staticBase("./src/a.ts")).toBe("src/a.ts")
    expect(staticBase("**/*.ts")).toBe("")
  })
  it("overlap", () => {
    expect(scopesOverlap(["src/**"], ["src/auth/login.ts"])).toBe(true)
    expect(scopesOverlap(["src/a/**"], ["src/b/**"])).toBe(false)
    expect(scopesOverlap(["src/a.ts"], ["src/b.ts"])).toBe(false)
    expect(scopesOverlap(["**/*.md"], ["src/x.ts"])).toBe(true)
    expect(scopesOverlap([], ["src/**"])).toBe(false)
  })
  it("membership", () => {
    expect(inScope(["src/auth/**"], "src/auth/login.ts")).toBe(true)
    expect(inScope(["src/auth/**"], "src/billing/x.ts")).toBe(false)
    expect(inScope(["docs"], "docs/a/b.md")).toBe(true)
    expect(inScope(["src/*.ts"], "src/a.ts")).toBe(true)
    expect(inScope(["src/*.ts"], "src/a/b.ts")).toBe(false)
  })
  it("paths and targets", () => {
    expect(projectPath("/p", "/p/src/a.ts")).toBe("src/a.ts")
    expect(projectPath("/p", "/etc/passwd")).toBeUndefined()
    expect(writeTargets("write", { filePath: "/p/a.ts", content: "x" })).toEqual(["/p/a.ts"])
    expect(writeTargets("patch", { patchText: "*** Begin Patch\n*** Add File: src/n.ts\n+x\n*** Update File: src/o.ts\n" })).toEqual(["src/n.ts", "src/o.ts"])
  })
})
