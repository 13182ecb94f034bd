import { TaskError } from "../tasks/manager.js"
import { ValidationError } from "../protocol.js"

/** Tool errors are read by a model: say what was wrong and what to do, without stack traces. */
export function modelError(tool: string, err: unknown): Error {
  if (err instanceof TaskError || err instanceof ValidationError) return new Error(`${tool}: ${err.message}`)
  return new Error(`${tool} failed inside NSO: ${err instanceof Error ? err.message : String(err)}. Try again; if it keeps failing, tell the user.`)
}
