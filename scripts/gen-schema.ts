/**
 * Writes the JSON Schema of NSO's options (generated from the zod schema, the single source of
 * truth) to dist/options.schema.json and config/options.schema.json, for editor completion in
 * `.opencode/nso.yaml` and opencode.json. Run by `npm run build`.
 */
import { writeFileSync } from "node:fs"
import { join, resolve } from "node:path"
import { z } from "zod"
import { Options } from "../plugin/options.js"
import { CONFIG_DIR, PACKAGE_ROOT } from "../plugin/paths.js"

export function optionsJsonSchema(): Record<string, unknown> {
  return {
    ...z.toJSONSchema(Options, { io: "input" }),
    title: "NSO options",
    description: "Options of the NSO OpenCode plugin (opencode-nso).",
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${resolve(process.argv[1])}`).href) {
  const text = JSON.stringify(optionsJsonSchema(), null, 2) + "\n"
  for (const path of [join(PACKAGE_ROOT, "dist", "options.schema.json"), join(CONFIG_DIR, "options.schema.json")]) writeFileSync(path, text)
}
