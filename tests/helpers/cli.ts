import { beforeEach, vi } from "vitest"
import { main } from "../../scripts/nso.js"
import { tempDir } from "./fake-deps.js"

/** Runs `nso` in-process; what it printed to stdout and stderr, and its exit code. */
export async function run(args: string[]): Promise<{ code: number; out: string; err: string }> {
  const lines: string[] = []
  const errors: string[] = []
  const code = await main(
    args,
    (s) => lines.push(s),
    (s) => errors.push(s),
  )
  return { code, out: lines.join("\n"), err: errors.join("\n") }
}

/** No test of the CLI reads the real ~/.config/opencode or $OPENCODE_CONFIG. */
export function isolateConfig(): void {
  beforeEach(() => {
    vi.stubEnv("XDG_CONFIG_HOME", tempDir("nso-xdg-"))
    vi.stubEnv("OPENCODE_CONFIG", "")
    vi.stubEnv("OPENCODE_CONFIG_DIR", "")
    return () => vi.unstubAllEnvs()
  })
}
