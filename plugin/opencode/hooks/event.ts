import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../../runtime.js"
import { assistantError, type OpencodeError } from "../shapes.js"

type EventHook = NonNullable<Hooks["event"]>

/**
 * Bus events → runtime: session lifecycle, activity, task completion. OpenCode hands events to
 * plugins one after another, so slow work (anything that talks to OpenCode or the disk) is
 * started here and not awaited: one task's completion never delays the next event.
 */
export function eventHook(rt: Runtime): EventHook {
  const detach = (what: string, p: Promise<unknown>) =>
    void p.catch((err) => rt.deps.log.log("error", `handling ${what} failed`, { error: err instanceof Error ? (err.stack ?? err.message) : String(err) }))
  return async ({ event }) => {
    switch (event.type) {
      case "session.created":
        detach("session.created", rt.sessionCreated(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title }))
        break
      case "session.updated":
        rt.registry.learn(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title })
        break
      case "session.status": {
        const busy = event.properties.status.type !== "idle"
        rt.sessionBusy(event.properties.sessionID, busy)
        if (!busy) detach("session.status", rt.tasks.onIdle(event.properties.sessionID))
        break
      }
      case "session.idle":
        rt.sessionBusy(event.properties.sessionID, false)
        detach("session.idle", rt.tasks.onIdle(event.properties.sessionID))
        break
      case "session.error": {
        const sid = event.properties.sessionID
        const err = event.properties.error as OpencodeError | undefined
        if (sid && err) {
          const e = assistantError(err)
          detach("session.error", rt.tasks.onError(sid, e))
          if (e.aborted) rt.replyStopped(sid)
        }
        break
      }
      case "message.part.updated": {
        const part = event.properties.part
        rt.tasks.touch(part.sessionID)
        if (part.type === "text" && !part.synthetic) rt.tasks.observeText(part.sessionID, part.messageID, part.id, part.text)
        break
      }
      case "message.updated": {
        const info = event.properties.info
        rt.tasks.touch(info.sessionID)
        if (info.role === "assistant") {
          const t = info.tokens
          const usage = t && { input: t.input ?? 0, output: t.output ?? 0, reasoning: t.reasoning ?? 0, cacheRead: t.cache?.read ?? 0, cacheWrite: t.cache?.write ?? 0, cost: info.cost ?? 0 }
          if (usage) rt.telemetry.usage(info.sessionID, info.id, usage, info.providerID && info.modelID ? `${info.providerID}/${info.modelID}` : undefined)
          const err = info.error as OpencodeError | undefined
          rt.tasks.observeAssistant(
            info.sessionID,
            info.id,
            {
              completed: info.time.completed !== undefined || err !== undefined,
              createdAt: info.time.created,
              ...(err ? { error: assistantError(err) } : {}),
            },
            usage,
          )
        }
        break
      }
      case "session.deleted":
        detach("session.deleted", rt.sessionDeleted(event.properties.info.id))
        break
    }
  }
}
