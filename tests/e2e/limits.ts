/**
 * Every end-to-end time limit, decided here and nowhere else. The figures are sized for a
 * 2-core machine with another process keeping one core busy: there a server start takes up to
 * ~10 s and OpenCode runs a child session's turn several times slower than on an idle machine.
 *
 * Inner waits never pick their own limit: they wait until shortly before the running test's
 * limit (see `remainingMs`), so a slow run fails with "timed out … waiting for <what>" and what
 * was seen, never with vitest's bare "Test timed out".
 */
export const LIMITS = {
  /** One `opencode serve` start, until it prints its URL (ms). */
  serverStartMs: 30_000,
  /** A test that runs on a server shared by its describe block (ms). */
  testMs: 90_000,
  /** A test that starts its own servers: room for two starts (a restart) plus the work (ms). */
  ownServersTestMs: 90_000 + 2 * 30_000,
  /** beforeAll / afterAll that start or stop a shared server (ms). */
  hookMs: 60_000,
  /** Kept free at the end of a test so an inner wait fails first, naming what it waited for (ms). */
  marginMs: 3_000,
} as const

let deadline: number | undefined

/** Called before each e2e test with that test's own limit (see setup.ts). */
export function startTestClock(timeoutMs: number): void {
  deadline = Date.now() + timeoutMs
}

/** Time an inner wait may still take in the running test (ms); outside a test, a hook's share. */
export function remainingMs(): number {
  const end = deadline ?? Date.now() + LIMITS.hookMs
  return Math.max(500, end - Date.now() - LIMITS.marginMs)
}
