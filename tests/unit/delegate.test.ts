import { describe, expect, it } from "vitest"
import { compactNames } from "../../plugin/opencode/tools/delegate.js"

describe("delegate's agent list", () => {
  it("writes families once and keeps the rest as they are", () => {
    expect(compactNames(["builder", "scout", "review-security", "review-performance", "data-engineer", "lead"])).toBe("builder, scout, review-{security,performance}, data-engineer, lead")
  })
})
