import { beforeEach } from "vitest"
import { startTestClock } from "./limits.js"

// Each e2e test's inner waits are bounded by that test's own limit.
beforeEach((ctx) => startTestClock(ctx.task.timeout))
