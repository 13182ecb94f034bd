import { defineConfig } from "vitest/config"
import { LIMITS } from "./tests/e2e/limits.js"

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: "unit",
          include: ["tests/unit/**/*.test.ts"],
          // Unit tests run on the injected clock; a slow one is a bug, not a slow machine.
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["tests/e2e/**/*.test.ts"],
          setupFiles: ["tests/e2e/setup.ts"],
          testTimeout: LIMITS.testMs,
          hookTimeout: LIMITS.hookMs,
          // Each e2e file starts a real OpenCode server; two cores do not fit more than one at a time.
          fileParallelism: false,
        },
      },
    ],
  },
})
