import { spawn } from "node:child_process"
import { appendFileSync, mkdirSync, watch as fsWatch } from "node:fs"
import * as nodeFs from "node:fs/promises"
import { dirname } from "node:path"
import { customAlphabet } from "nanoid"

/**
 * Every side effect NSO has goes through this object. Core modules take it as an argument and
 * never reach for `Date`, timers, `node:fs` or the OpenCode client themselves, so tests can run
 * them with a fake clock and a scratch directory.
 */
export interface Deps {
  clock: Clock
  timers: Timers
  ids: Ids
  fs: Fs
  log: Logger
  /** OpenCode, seen through NSO's own small port (adapted in opencode/host.ts). */
  host: Host
  /** Processes NSO starts and stops itself (background jobs), and folder watches. */
  proc: Processes
  /**
   * Appends to a file synchronously, creating its folder: only for the signal path (SIGTERM),
   * where the process may exit right after the handlers run and nothing async completes.
   */
  appendSync(path: string, text: string): void
}

/** What NSO needs from OpenCode, in NSO's terms. */
export interface Host {
  /** Puts a synthetic text part into a session; `noReply` stores it without a model turn. */
  /**
   * Puts a message into a session. `agent`: who the turn runs as (a prompt without one runs as
   * OpenCode's default agent, not the session's); with `delegates`, the tools as for `prompt`.
   */
  inject(sessionId: string, message: { text: string; meta: Record<string, unknown>; noReply: boolean; agent?: string; delegates?: boolean }): Promise<void>
  toast(message: string, variant: "info" | "success" | "warning" | "error"): Promise<void>
  session(id: string): Promise<HostSession | undefined>
  sessions(): Promise<HostSession[]>
  /** Every id carried in `metadata.nso.ids` of the session's stored messages (to settle in-doubt deliveries). */
  injectedIds(sessionId: string): Promise<Set<string>>
  /** Creates a child session; returns its id. */
  createSession(input: { parentId: string; title: string }): Promise<string>
  /**
   * Sends a prompt without waiting for the reply. `delegates` marks a background agent's prompt:
   * its session gets the background side of NSO's tools, and the delegating side only if true.
   */
  prompt(sessionId: string, input: { agent: string; text: string; delegates?: boolean; meta?: Record<string, unknown> }): Promise<void>
  abort(sessionId: string): Promise<void>
  /** The session's latest assistant message, or undefined if it has none. */
  lastAssistant(sessionId: string): Promise<AssistantOutcome | undefined>
  /** Sessions currently busy (generating or retrying). */
  busySessions(): Promise<Set<string>>
}

export interface AssistantOutcome {
  /** The message finished (successfully or with an error). */
  completed: boolean
  /** All text parts of the message, joined. */
  text: string
  /** Set if the message ended in an error; `aborted` when it was cancelled. */
  error?: { name: string; message: string; aborted: boolean; transient?: boolean }
  /** When the message was created (ms since epoch). */
  createdAt: number
}

export interface HostSession {
  id: string
  parentId?: string
  title?: string
  /** Last update, ms since epoch. */
  updatedAt?: number
}

/** A host that does nothing: for the CLI and unit tests that do not talk to OpenCode. */
export const detachedHost: Host = {
  inject: async () => {
    throw new Error("not connected to OpenCode")
  },
  toast: async () => {},
  session: async () => undefined,
  sessions: async () => [],
  injectedIds: async () => new Set(),
  createSession: async () => {
    throw new Error("not connected to OpenCode")
  },
  prompt: async () => {
    throw new Error("not connected to OpenCode")
  },
  abort: async () => {},
  lastAssistant: async () => undefined,
  busySessions: async () => new Set(),
}

/** Background jobs' side of the operating system. */
export interface Processes {
  /**
   * Starts `file args…` detached: its own session and process group (pgid = pid), no stdio, not
   * waited for, so it outlives this process. Returns its pid.
   */
  spawnDetached(file: string, args: readonly string[], opts: { cwd: string }): Promise<number>
  /** Sends `signal` (0: only test) to every process of a group; false if the group has none left. */
  signalGroup(pgid: number, signal: "SIGTERM" | "SIGKILL" | 0): boolean
  /** Calls `onChange` when something in the folder changes; returns the stop function. Best effort. */
  watch(dir: string, onChange: () => void): () => void
}

export const systemProcesses: Processes = {
  spawnDetached: (file, args, opts) =>
    new Promise((resolve, reject) => {
      const child = spawn(file, [...args], { cwd: opts.cwd, detached: true, stdio: "ignore" })
      child.unref()
      // The pid is known at once when the process started; waiting for the "spawn" event would
      // cost a turn of the event loop on every job start.
      if (child.pid !== undefined) return resolve(child.pid)
      child.once("error", reject)
      child.once("spawn", () => resolve(child.pid!))
    }),
  signalGroup: (pgid, signal) => {
    try {
      process.kill(-pgid, signal)
      return true
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ESRCH") return false
      // EPERM: the group exists but is not ours to signal.
      if ((err as NodeJS.ErrnoException).code === "EPERM") return true
      throw err
    }
  },
  watch: (dir, onChange) => {
    try {
      const w = fsWatch(dir, () => onChange())
      w.on("error", () => {})
      w.unref?.()
      return () => w.close()
    } catch {
      // The folder may be gone or the platform may not watch: the caller's poll covers it.
      return () => {}
    }
  },
}

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  /** Monotonic milliseconds (fractional), for measuring durations. */
  monotonic(): number
}

export type TimerHandle = { readonly __timer: unique symbol } | object

export interface Timers {
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
  /** Whether a pending timer keeps the process alive. Background sweeps pass `false`. */
  setInterval(fn: () => void, ms: number, opts?: { keepAlive?: boolean }): TimerHandle
  clearInterval(handle: TimerHandle): void
}

export interface Ids {
  /** A prefixed random id, e.g. `id("tsk")` → `tsk_V1StGXR8Z5jdHi`. */
  id(prefix: string): string
}

/** The subset of `node:fs/promises` NSO uses. */
export type Fs = Pick<
  typeof nodeFs,
  "open" | "readFile" | "writeFile" | "appendFile" | "rename" | "mkdir" | "stat" | "unlink" | "readdir" | "rm"
>

export type LogLevel = "debug" | "info" | "warn" | "error"
export interface Logger {
  log(level: LogLevel, message: string, extra?: Record<string, unknown>): void
}

// Lower-case alphanumerics only: ids end up in headers a model has to copy back verbatim. The
// first character is a letter: markdown renderers (OpenCode's TUI among them) drop the
// underscore of `q_5a1…` but not of `q_a51…`, and a garbled id cannot be copied back.
const idHead = customAlphabet("abcdefghijklmnopqrstuvwxyz", 1)
const idBody = customAlphabet("0123456789abcdefghijklmnopqrstuvwxyz", 13)

export const systemClock: Clock = { now: () => Date.now(), monotonic: () => performance.now() }

export const systemTimers: Timers = {
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms)
    return t
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
  setInterval: (fn, ms, opts) => {
    const t = setInterval(fn, ms)
    if (opts?.keepAlive === false) t.unref()
    return t
  },
  clearInterval: (h) => clearInterval(h as NodeJS.Timeout),
}

export const randomIds: Ids = { id: (prefix) => `${prefix}_${idHead()}${idBody()}` }

export const silentLogger: Logger = { log: () => {} }

export function appendSync(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true })
  appendFileSync(path, text)
}

/** Appends log lines to `.opencode/nso/nso.log` (never stdout: that is OpenCode's). */
export function fileLogger(path: string, minLevel: LogLevel): Logger {
  const order: LogLevel[] = ["debug", "info", "warn", "error"]
  const min = order.indexOf(minLevel)
  let ready = false
  return {
    log(level, message, extra) {
      if (order.indexOf(level) < min) return
      try {
        if (!ready) {
          mkdirSync(dirname(path), { recursive: true })
          ready = true
        }
        appendFileSync(path, JSON.stringify({ time: new Date().toISOString(), level, message, ...extra }) + "\n")
      } catch {
        // Logging must never break a hook.
      }
    },
  }
}


/** The real thing; pass overrides for any part. */
export function createDeps(overrides: Partial<Deps> = {}): Deps {
  return {
    clock: systemClock,
    timers: systemTimers,
    ids: randomIds,
    fs: nodeFs,
    log: silentLogger,
    host: detachedHost,
    proc: systemProcesses,
    appendSync,
    ...overrides,
  }
}
