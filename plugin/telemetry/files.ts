import { join } from "node:path"
import type { Deps } from "../deps.js"
import { JsonlLog } from "./jsonl.js"
import type { TelemetrySink } from "./recorder.js"
import { TELEMETRY_FILES } from "./schema.js"

/** The telemetry files under `<stateDir>/telemetry/`, rotated past `maxBytes` (default 16 MiB each, 3 kept). */
export function fileSink(deps: Pick<Deps, "fs" | "log">, dir: string, maxBytes = 16 * 1024 * 1024): TelemetrySink & { flush(): Promise<void> } {
  const workflows = new JsonlLog(deps, join(dir, TELEMETRY_FILES.workflows), { maxBytes })
  const invocations = new JsonlLog(deps, join(dir, TELEMETRY_FILES.invocations), { maxBytes })
  return {
    workflow: (e) => workflows.append(e),
    invocation: (r) => invocations.append(r),
    flush: async () => {
      await workflows.flush()
      await invocations.flush()
    },
  }
}
