import { describe, expect, it } from "vitest"
import { chooseOption } from "../../plugin/questions/choice.js"

const RC = ["resume", "cancel"]
const SYN = { resume: ["continue", "go on"], cancel: ["stop", "kill"] }

describe("chooseOption", () => {
  it.each([
    ["resume", "resume"],
    ["no problem, resume", "resume"],
    ["No worries. Please continue.", "resume"],
    ["don't cancel it", "resume"],
    ["do not resume", "cancel"],
    ["no, stop it", "cancel"],
    ["Cancel!", "cancel"],
    ["please go on", "resume"],
  ])("%s → %s", (answer, option) => {
    expect(chooseOption(answer, RC, SYN)).toEqual({ ok: true, option })
  })

  it("is undecided when an answer names no option or both", () => {
    expect(chooseOption("no", RC, SYN)).toEqual({ ok: false, named: [] })
    expect(chooseOption("resume, or maybe cancel", RC, SYN)).toEqual({ ok: false, named: ["resume", "cancel"] })
  })

  it("matches whole words only", () => {
    expect(chooseOption("stopwatch resumed", RC, SYN)).toEqual({ ok: false, named: [] })
  })
})
