import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    testTimeout: 20_000,
    hookTimeout: 60_000,
    // e2e suites each start a real OpenCode server; two cores do not fit more than one at a time.
    fileParallelism: false,
  },
})
