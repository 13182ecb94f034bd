import type { Hooks } from "@opencode-ai/plugin"
import type { Runtime } from "../runtime.js"

type EventHook = NonNullable<Hooks["event"]>

/** Bus events → runtime: session lifecycle and activity. */
export function eventHook(rt: Runtime): EventHook {
  return async ({ event }) => {
    switch (event.type) {
      case "session.created":
        await rt.sessionCreated(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title })
        break
      case "session.updated":
        rt.registry.learn(event.properties.info.id, { parentId: event.properties.info.parentID, title: event.properties.info.title })
        break
      case "session.status":
        rt.sessionBusy(event.properties.sessionID, event.properties.status.type !== "idle")
        break
      case "session.idle":
        rt.sessionBusy(event.properties.sessionID, false)
        break
      case "session.deleted":
        await rt.sessionDeleted(event.properties.info.id)
        break
    }
  }
}
