import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { formatContext, readContext, updateContext } from "../../plugin/messaging/project-context.js"
import { fakeDeps, tempDir } from "../helpers/fake-deps.js"

describe("project context", () => {
  it("reads empty, updates fields, appends notes", async () => {
    const deps = fakeDeps()
    const path = join(tempDir(), "context.json")
    expect(await readContext(deps, path)).toMatchObject({ goal: "", status: "", notes: [] })
    await updateContext(deps, path, { goal: "Ship it" }, "user")
    const c = await updateContext(deps, path, { status: "testing", note: "CI green" }, "builder")
    expect(c).toMatchObject({ goal: "Ship it", status: "testing", updatedBy: "builder" })
    expect(c.notes).toEqual([{ time: new Date(deps.time.now).toISOString(), by: "builder", text: "CI green" }])
    expect(formatContext(c)).toContain("- " + new Date(deps.time.now).toISOString() + " builder: CI green")
  })

  it("says what was wrong with an update", async () => {
    const deps = fakeDeps()
    const path = join(tempDir(), "context.json")
    await expect(updateContext(deps, path, {}, "user")).rejects.toThrow(/give at least one of goal, status or note/)
    await expect(updateContext(deps, path, { goal: 5 }, "user")).rejects.toThrow(/goal: .*expected string.*received 5/)
    await expect(updateContext(deps, path, { colour: "red" }, "user")).rejects.toThrow(/colour/)
  })
})
