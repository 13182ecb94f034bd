import { execFile } from "node:child_process"
import { join } from "node:path"
import { promisify } from "node:util"
import { expect, it } from "vitest"
import { REPO } from "../../scripts/harness/opencode.js"
import { LIMITS, remainingMs } from "./limits.js"

const run = promisify(execFile)

it("npm run demo tells the whole story", async () => {
  const { stdout } = await run(process.execPath, [join(REPO, "dist/scripts/demo.js")], { timeout: remainingMs(), killSignal: "SIGTERM" })
  const lines = stdout.split("\n")
  const at = (re: RegExp) => lines.findIndex((l) => re.test(l))
  const delegated = at(/oracle +calls delegate/)
  const kept = at(/user +Meanwhile, what is our test command\?/)
  const held = at(/nso +buffered question from builder \(high\) — held until the user pauses/)
  const delivered = at(/oracle +sees \[NSO · builder · task tsk_\w+ · question q_\w+\]/)
  const answered = at(/nso +question q_\w+ answered by user: Postgres/)
  const done = at(/oracle +says: The Builder is done/)
  const team = at(/nso +team run wf_\w+ created for code-review \(parallel\)/)
  const reviewers = lines.filter((l) => /review-(security|performance|best-practices|test-coverage) +says: /.test(l)).length
  const verdict = at(/oracle +sees \[NSO · code-review · run wf_\w+ · completion\]/)
  for (const i of [delegated, kept, held, delivered, answered, done, team, verdict]) expect(i).toBeGreaterThan(-1)
  expect(reviewers).toBe(4)
  expect(done).toBeLessThan(team)
  expect(team).toBeLessThan(verdict)
  expect(delegated).toBeLessThan(delivered)
  expect(held).toBeLessThan(delivered)
  expect(delivered).toBeLessThan(answered)
  expect(answered).toBeLessThan(done)
}, LIMITS.ownServersTestMs)
