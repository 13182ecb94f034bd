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
  for (const i of [delegated, kept, held, delivered, answered, done]) expect(i).toBeGreaterThan(-1)
  expect(delegated).toBeLessThan(delivered)
  expect(held).toBeLessThan(delivered)
  expect(delivered).toBeLessThan(answered)
  expect(answered).toBeLessThan(done)
}, LIMITS.ownServersTestMs)
