import { existsSync } from "node:fs"
import { chromium, type Browser } from "playwright-core"

/**
 * Debian's chromium, driven by playwright-core (no browser download): for the dashboard's
 * browser tests and benchmark. `CHROMIUM_PATH` names another binary.
 */

export const INSTALL_HINT =
  "The dashboard's browser tests need Chromium: `apt-get install -y chromium` (Debian/Ubuntu, as root), or set CHROMIUM_PATH to a Chromium or Chrome binary. `.ci/run` installs it."

export function chromiumPath(env: NodeJS.ProcessEnv = process.env): string {
  const candidates = [env.CHROMIUM_PATH, "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"].filter((p): p is string => !!p)
  const found = candidates.find((p) => existsSync(p))
  if (!found) throw new Error(`No Chromium found (looked at ${candidates.join(", ")}). ${INSTALL_HINT}`)
  return found
}

/** Headless; no sandbox when running as root (Chromium refuses to start sandboxed as root). */
export async function launchChromium(): Promise<Browser> {
  const root = typeof process.getuid === "function" && process.getuid() === 0
  return chromium.launch({ executablePath: chromiumPath(), headless: true, args: root ? ["--no-sandbox"] : [] })
}
