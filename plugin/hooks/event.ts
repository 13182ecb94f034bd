import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"

type EventHook = NonNullable<Hooks["event"]>

/** Bus events → runtime: session lifecycle, activity, task completion. */
export function eventHook(rt: Runtime): EventHook {
  return async ({ event }) => {
    switch (event.type) {
      case "session.created":
        await rt.sessionCreated(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title })
        break
      case "session.updated":
        rt.registry.learn(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title })
        break
      case "session.status": {
        const busy = event.properties.status.type !== "idle"
        rt.sessionBusy(event.properties.sessionID, busy)
        if (!busy) await rt.tasks.onIdle(event.properties.sessionID)
        break
      }
      case "session.idle":
        rt.sessionBusy(event.properties.sessionID, false)
        await rt.tasks.onIdle(event.properties.sessionID)
        break
      case "session.error": {
        const sid = event.properties.sessionID
        const err = event.properties.error as { name?: string; data?: { message?: string } } | undefined
        if (sid && err) await rt.tasks.onError(sid, { name: err.name ?? "Error", message: err.data?.message ?? err.name ?? "unknown error" })
        break
      }
      case "message.part.updated":
        rt.tasks.touch(event.properties.part.sessionID)
        break
      case "message.updated":
        rt.tasks.touch(event.properties.info.sessionID)
        break
      case "session.deleted":
        await rt.sessionDeleted(event.properties.info.id)
        break
    }
  }
}
