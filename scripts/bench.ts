#!/usr/bin/env node
/**
 * `npm run bench`: prints a table of NSO's figures. Nothing here asserts; compare with README.
 * Sections: buffer, router, journal, hooks (in-process); start, delegation (a real OpenCode server);
 * compare, twenty, twenty-snapshots (NSO against OpenCode's own background mode and against bare
 * child sessions, both servers in the same run); sync (delegate with wait: true against OpenCode's
 * blocking task tool).
 * team (a parallel team of 8 members × 1 s model and a synthesis, on a real OpenCode server).
 * messaging (the loop guard in memory; an agent message into an idle recipient's session, on a real server).
 * telemetry (1M invocation lines analysed in one streaming pass: time and RSS growth).
 * dashboard (an NSO event → visible in a real browser; a page with 1,000 tasks drawn).
 * jobs (background shell jobs on a real server: job_start, and job end → completion in the Oracle's session).
 * second-start (OpenCode's next start with and without NSO; minutes, so only with --only).
 * Run with `--only <section>` to run one.
 */
import { bufferBench, journalBench, memoryBench, routerBench } from "./bench/core.js"
import { hookBench, startBench } from "./bench/hooks.js"
import { compareBench, syncBench, twentyBench } from "./bench/compare.js"
import { delegationBench } from "./bench/live.js"
import { secondStartBench } from "./bench/second-start.js"
import { teamBench } from "./bench/team.js"
import { messagingBench } from "./bench/messaging.js"
import { telemetryBench } from "./bench/telemetry.js"
import { dashboardBench } from "./bench/dashboard.js"
import { jobsBench } from "./bench/jobs.js"
import { printTable, type Row } from "./bench/util.js"

const sections: Record<string, () => Promise<Row[]>> = {
  buffer: async () => [...(await bufferBench()), ...(await memoryBench())],
  router: routerBench,
  journal: journalBench,
  hooks: hookBench,
  start: startBench,
  delegation: async () => [...(await delegationBench({ snapshot: true })), ...(await delegationBench({ snapshot: false }))],
  compare: () => compareBench(),
  sync: () => syncBench(),
  twenty: () => twentyBench({ snapshot: false, rounds: 3 }),
  "twenty-snapshots": () => twentyBench({ snapshot: true, rounds: 1 }),
  // What a user gets (NSO's and OpenCode's defaults), then as the other live rows run: the user
  // paused (`pauseMs: 0`, the result goes in at once) and no snapshots.
  team: async () => [...(await teamBench()), ...(await teamBench({ label: "user paused, no snapshots", snapshot: false, nso: { buffer: { pauseMs: 0 } } }))],
  messaging: messagingBench,
  telemetry: () => telemetryBench(),
  dashboard: () => dashboardBench(),
  jobs: jobsBench,
  "second-start": () => secondStartBench(),
}
/** Sections that take minutes (the offline second start waits out OpenCode's install stall): only with --only. */
const onRequest = new Set(["second-start"])

const only = process.argv.includes("--only") ? process.argv[process.argv.indexOf("--only") + 1] : undefined
if (only && !sections[only]) {
  console.error(`Unknown section "${only}". Sections: ${Object.keys(sections).join(", ")}`)
  process.exit(2)
}
const rows: Row[] = []
for (const [name, run] of Object.entries(sections)) {
  if (only ? name !== only : onRequest.has(name)) continue
  process.stderr.write(`bench: ${name}…\n`)
  rows.push(...(await run()))
}
printTable(rows)
