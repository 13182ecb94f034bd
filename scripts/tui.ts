#!/usr/bin/env node
/**
 * `npm run tui`: drives the real OpenCode TUI (1.18.33) in tmux against a server with NSO and the
 * scripted model, and saves what the screen shows at each step to docs/tui/*.txt. What only the
 * TUI shows — NSO's messages in the transcript, the delegate and ask_user rows, the board — is
 * checked here by a person reading the captures (and by the asserts below).
 */
import { execFileSync } from "node:child_process"
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"
import { MockModel } from "./harness/mock-model.js"
import { REPO, startOpencode, type RunningOpencode } from "./harness/opencode.js"

const OUT = join(REPO, "docs", "tui")
const TMUX = `nso-tui-${process.pid}`
const tmux = (...args: string[]) => execFileSync("tmux", args, { encoding: "utf8" })
const screen = () => tmux("capture-pane", "-p", "-t", TMUX)
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

async function until(what: string, test: (s: string) => boolean, ms = 60_000): Promise<string> {
  const end = Date.now() + ms
  for (;;) {
    const s = screen()
    if (test(s)) return s
    if (Date.now() > end) throw new Error(`timed out after ${ms / 1000} s waiting for ${what}; the screen shows:\n${s}`)
    await sleep(250)
  }
}

let step = 0
function keep(name: string, s: string): void {
  writeFileSync(join(OUT, `${String(++step).padStart(2, "0")}-${name}.txt`), s)
  console.log(`— ${name}\n${s}`)
}

async function type(text: string): Promise<void> {
  tmux("send-keys", "-t", TMUX, "-l", text)
  await sleep(400)
  tmux("send-keys", "-t", TMUX, "Enter")
  // A slash command: the first Enter picks it from the completion list, the second runs it.
  if (text.startsWith("/")) {
    await sleep(400)
    if (screen().includes(text.split(" ")[0]!)) tmux("send-keys", "-t", TMUX, "Enter")
  }
}

const model = new MockModel()
model.defaultWaitMs = () => 60_000
await model.start()
model.script([
  { when: { user: "build the login page" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "Build the login page", title: "login page" } }] }, times: 1 },
  { when: { toolResult: "Started task" }, reply: { text: "I asked the builder to build the login page. Anything else meanwhile?" }, times: 1 },
  { when: { user: "Build the login page" }, reply: { toolCalls: [{ name: "ask_user", args: { question: "Where should sessions be stored?", options: ["Postgres", "Redis"] } }] }, times: 1 },
  { when: { userMatch: "question (q_\\w+)\\]" }, reply: { text: "The builder asks where sessions should be stored: Postgres or Redis?" }, times: 1 },
  { when: { toolResult: "The user answered: Postgres" }, reply: { text: "Login page built; sessions in Postgres." }, times: 1 },
  { when: { user: "answered question" }, reply: { text: "Passed on: Postgres." }, times: 1 },
  { when: { user: "Login page built" }, reply: { text: "The builder is done: the login page is built, sessions live in Postgres." }, times: 1 },
])

let oc: RunningOpencode | undefined
let code = 0
try {
  mkdirSync(OUT, { recursive: true })
  oc = await startOpencode({ modelUrl: model.url, nso: { buffer: { pauseMs: 1500 } } })
  const env = { HOME: oc.homeDir, XDG_CONFIG_HOME: join(oc.homeDir, ".config"), XDG_DATA_HOME: join(oc.homeDir, ".local/share"), XDG_CACHE_HOME: join(oc.homeDir, ".cache"), XDG_STATE_HOME: join(oc.homeDir, ".local/state"), OPENCODE_DISABLE_AUTOUPDATE: "1", TERM: "xterm-256color" }
  const bin = join(REPO, "node_modules", ".bin", "opencode")
  const cmd = `cd ${oc.projectDir} && ${Object.entries(env).map(([k, v]) => `${k}=${v}`).join(" ")} ${bin} attach ${oc.url} --dir ${oc.projectDir}`
  tmux("new-session", "-d", "-s", TMUX, "-x", "140", "-y", "45", cmd)
  await until("the TUI's prompt", (s) => /oracle/i.test(s), 60_000)
  keep("start", screen())
  await type("Please build the login page.")
  keep("delegated", await until("the delegate row", (s) => s.includes("delegate") || s.includes("in the background"), 60_000))
  keep("question-delivered", await until("the builder's question in the transcript", (s) => s.includes("Where should sessions be stored?"), 60_000))
  const q = /q_[a-z0-9]{6,}/.exec(screen())?.[0]
  if (!q) throw new Error("no question id on screen")
  await type("/nso-status")
  keep("board", await until("the board", (s) => s.includes("Waiting for you"), 30_000))
  await type(`/answer ${q} Postgres`)
  keep("result", await until("the builder's result", (s) => s.includes("Login page built") || s.includes("The builder is done"), 60_000))
} catch (err) {
  console.error(`tui capture failed: ${err instanceof Error ? err.message : String(err)}`)
  code = 1
} finally {
  try {
    tmux("kill-session", "-t", TMUX)
  } catch {
    // already gone
  }
  await oc?.dispose()
  await model.stop()
}
process.exit(code)
