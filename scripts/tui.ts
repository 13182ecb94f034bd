#!/usr/bin/env node
/**
 * `npm run tui`: drives the real OpenCode TUI (1.18.33) in tmux against a server with NSO and the
 * scripted model, and saves what the screen shows at each step to docs/tui/*.txt. What only the
 * TUI shows — NSO's messages in the transcript, the delegate and ask_user rows, the board — is
 * checked here by a person reading the captures (and by the asserts below).
 *
 * The story: a delegated builder asks a question and is answered with /answer (01–05); a team is
 * started with /team, followed on the board and reports once (06–08); a running builder is told
 * something with /tell and acts on it (09–10).
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

/**
 * The transcript column as one string, however the TUI wrapped it: the sidebar (column 99 on) cut
 * off, the bars and all whitespace removed. Compare with `squeeze(text)`.
 */
const squeeze = (text: string) => text.replace(/[┃\s]/g, "")
const flat = (s: string) => squeeze(s.split("\n").map((l) => l.slice(0, 99)).join(""))
const shows = (s: string, text: string) => flat(s).includes(squeeze(text))
/** The TUI is not generating (its footer offers "esc interrupt" only while a turn runs). */
const idle = (s: string) => !s.includes("esc interrupt")

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
  // The launch-check team (parallel, no coordinator): each member answers after a while, long enough to see it work on the board.
  { when: { user: "You are tester," }, reply: { text: "All 14 login tests pass, including a wrong password and an expired session.", delayMs: 10_000 }, times: 1 },
  { when: { user: "You are copywriter," }, reply: { text: 'The wording is clear; the button now says "Sign in" instead of "Log on".', delayMs: 10_000 }, times: 1 },
  { when: { user: "· launch-check · run wf_" }, reply: { text: 'The launch check passed: the login tests pass and the button says "Sign in".' }, times: 1 },
  // A slow builder, told something while it works.
  { when: { user: "Please write the release notes" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "Write the release notes for the login page", title: "release notes" } }] }, times: 1 },
  { when: { toolResultMatch: 'Started task (tsk_\\w+) \\(builder: "release notes"\\)' }, reply: { text: "The builder is writing the release notes (task $1)." }, times: 1 },
  { when: { user: "Write the release notes for the login page" }, reply: { text: "Release notes drafted: new login page, sessions kept in Postgres.", delayMs: 12_000 }, times: 1 },
  { when: { user: "mention that the session cookie is now HttpOnly" }, reply: { text: "Release notes written: new login page, sessions kept in Postgres, and, as you asked, the session cookie is now HttpOnly." }, times: 1 },
  { when: { user: "as you asked, the session cookie" }, reply: { text: "The release notes are ready, with the HttpOnly cookie mentioned." }, times: 1 },
  // Two long tasks the user then stops at once.
  { when: { user: "Please rebuild the docs site and the search index" }, reply: { toolCalls: [{ name: "delegate", args: { agent: "builder", prompt: "Rebuild the docs site", title: "docs site" } }, { name: "delegate", args: { agent: "builder", prompt: "Rebuild the search index", title: "search index" } }] }, times: 1 },
  { when: { toolResult: "Started task" }, reply: { text: "Two builders are rebuilding the docs site and the search index." }, times: 1 },
  { when: { user: "Rebuild the" }, reply: { text: "rebuilding…", delayMs: 60_000 } },
])

let oc: RunningOpencode | undefined
let code = 0
try {
  mkdirSync(OUT, { recursive: true })
  oc = await startOpencode({
    modelUrl: model.url,
    nso: {
      buffer: { pauseMs: 1500 },
      agents: {
        tester: { description: "Tests the login flow end to end", prompt: "You test the login flow." },
        copywriter: { description: "Checks the wording users see", prompt: "You check the wording." },
      },
      teams: {
        "launch-check": {
          description: "Checks a feature is ready to ship: tests and wording at once",
          pattern: "parallel",
          members: [
            { agent: "tester", role: "login tests" },
            { agent: "copywriter", role: "wording" },
          ],
        },
      },
    },
  })
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
  await until("the Oracle's summary, and the TUI idle", (s) => s.includes("The builder is done") && idle(s), 60_000)

  // A team, started by the user: no model turn, the run's id and members at once.
  await type("/team launch-check check the login page is ready to ship")
  const run = /Startedteamrun(wf_[a-z0-9]+)/.exec(flat(await until("the team run's id", (s) => shows(s, "Started team run wf_"), 30_000)))![1]!
  // (A toast with the same text covers the top of the transcript for a few seconds.)
  const started = await until("the start message naming the team and its members", (s) => shows(s, `[NSO · system] Started team run ${run}: launch-check (parallel; tester, copywriter).`), 30_000)
  if (!idle(started)) throw new Error(`/team started a model turn:\n${started}`)
  keep("team-started", started)
  await type("/nso-status")
  const board = await until("the board with the team run", (s) => shows(s, `${run} · team launch-check (parallel) · parallel_execution`), 30_000)
  for (const member of ["tester", "copywriter"])
    if (!new RegExp(`tsk_[a-z0-9]+·${member}·running·.*?·run${run}`).test(flat(board))) throw new Error(`the board does not list ${member} running in ${run}:\n${board}`)
  keep("team-board", board)
  const result = await until("the team's one result", (s) => shows(s, `[NSO · launch-check · run ${run} · completion]`) && shows(s, "The launch check passed"), 60_000)
  for (const said of ["- tester (login tests): done", "- copywriter (wording): done", "All 14 login tests pass", 'the button now says "Sign in"'])
    if (!shows(result, said)) throw new Error(`the team result does not show "${said}":\n${result}`)
  keep("team-result", result)
  await until("the TUI idle after the team", idle, 30_000)

  // /tell: a slow builder, told something while it works, acts on it.
  await type("Please write the release notes too.")
  const writing = await until("the Oracle naming the release-notes task", (s) => /The builder is writing the release notes \(task tsk_[a-z0-9]+\)/.test(s), 60_000)
  const task = /release notes \(task (tsk_[a-z0-9]+)\)/.exec(writing)![1]!
  await type(`/tell ${task} mention that the session cookie is now HttpOnly`)
  keep("told", await until("the /tell confirmation", (s) => shows(s, `Told builder (${task}): "mention that the session cookie is now HttpOnly"`), 30_000))
  const acted = await until("the builder's result after /tell", (s) => shows(s, `[NSO · builder · task ${task} · completion]`) && shows(s, "as you asked, the session cookie is now HttpOnly") && shows(s, "The release notes are ready"), 60_000)
  keep("told-result", acted)
  await until("the TUI idle after the release notes", idle, 30_000)

  // Stopping everything: both builders, one command, no model turn; the board shows what each spent.
  await type("Please rebuild the docs site and the search index.")
  await until("the Oracle confirming both builders", (s) => shows(s, "Two builders are rebuilding"), 60_000)
  await type("/nso-cancel-all")
  const stopped = await until("the /nso-cancel-all confirmation", (s) => shows(s, "Stopped all background work of this session: 2 task(s)"), 30_000)
  if (!idle(stopped)) throw new Error(`/nso-cancel-all started a model turn:\n${stopped}`)
  keep("cancel-all", stopped)
  await type("/nso-status")
  keep("spend-board", await until("the board with each task's tokens and the session's total", (s) => shows(s, "background work spent:"), 30_000))
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
