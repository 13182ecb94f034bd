import type { TeamPattern } from "../protocol.js"
import { memberName, orderedMembers, type Team, type TeamMember } from "./team.js"

/**
 * Each collaboration pattern as a pure planner: (team, goal) → the tasks NSO starts for the run,
 * their order (`after`) and who hears their end. The task machinery runs them; nothing here
 * knows about sessions, slots or the journal. Planning is deterministic, so after a restart the
 * same plan finds which of its steps were already started.
 */

export interface PlannedStep {
  /** Stable name of the step in the run: "coordinator", "member:2", "synthesis". */
  step: string
  agent: string
  role?: string
  title: string
  prompt: string
  /** Steps that must end first (their results are handed to this one). */
  after: string[]
  /**
   * `workflow`: the run hears this step's end and reports once for all; `parent`: the step's
   * result goes to the session that started the run, as any task's would.
   */
  report: "parent" | "workflow"
}

export interface RunPlan {
  steps: PlannedStep[]
  /** The step whose result is the run's result; none: the members' results are joined. */
  resultStep?: string
  /** Members a coordinator may delegate to (coordinator patterns). */
  delegatesTo: string[]
}


const title = (s: string) => s.split("\n")[0]!.slice(0, 60)

function teamHeader(team: Team, runId: string, context?: string): string {
  const lines = [`Team "${team.name}" (${team.pattern.replace("_", "-")}), run ${runId}: ${team.description}`]
  if (team.instructions.trim()) lines.push(`How this team works: ${team.instructions.trim()}`)
  if (context?.trim()) lines.push(`Shared project context (the user's goal and notes; add yours with board, project: true):\n${context.trim()}`)
  return lines.join("\n")
}

function roster(members: readonly TeamMember[]): string {
  return members.map((m) => `- ${memberName(m)}${m.team ? " (a sub-team)" : ""}${m.role ? `: ${m.role}` : ""}${m.instructions ? ` — ${m.instructions}` : ""}`).join("\n")
}

const REPORT =
  'End with your result: what you found or did, concisely. If you produced or changed files, list them last under "Artifacts:", one "- path" per line.'

function memberPrompt(team: Team, runId: string, goal: string, m: TeamMember, extra: string[], context?: string): string {
  const others = team.members.filter((x) => x !== m).map(memberName)
  return [
    teamHeader(team, runId, context),
    `You are ${memberName(m)}${m.role ? `, the team's ${m.role}` : ""}.${others.length ? ` Your teammates: ${others.join(", ")}.` : ""}`,
    `Team goal: ${goal}`,
    ...(m.instructions ? [`Your part: ${m.instructions}`] : []),
    ...extra,
    REPORT,
  ].join("\n\n")
}

/** The coordinator of a coordinator_worker or hierarchical team: plan, delegate, wait, synthesise. */
function coordinatorPrompt(team: Team, runId: string, goal: string, context?: string): string {
  return [
    teamHeader(team, runId, context),
    `You coordinate this team. Goal: ${goal}`,
    `Members (delegate only to these${team.pattern === "hierarchical" ? "; a sub-team runs as one member and returns one result" : ""}):\n${roster(team.members)}`,
    "1. Now: give each member one self-contained sub-task with `delegate` (agent = the member's name), all in this turn. Then end your turn with one line saying what you assigned; do not wait or poll.",
    "2. NSO hands you every member's result in one message once all have ended (a member that failed or timed out is marked). Then synthesise ONE answer for the goal: the findings by member, where they agree, a section titled exactly `Disagreements:` (each point where members disagree, or `Disagreements: none`), your recommendation, and — if a member failed — what is missing (say the result is partial).",
  ].join("\n\n")
}

function synthesisPrompt(team: Team, runId: string, goal: string, context?: string): string {
  return [
    teamHeader(team, runId, context),
    `You synthesise this team's work. Goal: ${goal}`,
    `Members:\n${roster(team.members)}`,
    "Their results follow (a member that failed or timed out is marked). Write ONE answer for the goal: findings by member, where they agree, a section titled exactly `Disagreements:` (each point, or `Disagreements: none`), your recommendation, and what is missing if a member failed (say the result is partial). Do not delegate; do not redo their work.",
  ].join("\n\n")
}

/** `context`: the shared project context (goal, status, notes) every step should see. */
export function planRun(team: Team, goal: string, runId: string, context?: string): RunPlan {
  const members = orderedMembers(team)
  const planners: Record<TeamPattern, () => RunPlan> = {
    coordinator_worker: () => coordinated(),
    hierarchical: () => coordinated(),
    parallel: () => {
      const steps = members.map((m, i) => member(m, i, [], team.coordinator || team.rules.wait_for_all ? "workflow" : "parent"))
      if (!team.coordinator) return { steps, delegatesTo: [] }
      steps.push({
        step: "synthesis",
        agent: team.coordinator,
        role: "coordinator",
        title: `${team.name} synthesis: ${title(goal)}`,
        prompt: synthesisPrompt(team, runId, goal, context),
        after: steps.map((s) => s.step),
        report: "workflow",
      })
      return { steps, resultStep: "synthesis", delegatesTo: [] }
    },
    sequential: () => {
      const steps = members.map((m, i) =>
        member(
          m,
          i,
          i ? [`member:${i - 1}`] : [],
          "workflow",
          [
            [
              i === 0 ? `You are step 1 of ${members.length}.` : `You are step ${i + 1} of ${members.length}. The previous member's result (and the files it listed under "Artifacts:") follows: build on it, do not redo it.`,
              i + 1 < members.length ? `${memberName(members[i + 1]!)} continues from your result.` : "Yours is the team's final result.",
            ].join(" "),
          ],
        ),
      )
      return { steps, resultStep: steps[steps.length - 1]!.step, delegatesTo: [] }
    },
    peer_to_peer: () => ({
      steps: members.map((m, i) =>
        member(m, i, [], team.rules.wait_for_all ? "workflow" : "parent", [
          "You work at the same time as your teammates, as peers: nobody assigns your work. Tell a teammate what matters to it with send_message (or ask it, kind request + wait_ms); post what everyone should know on the board. The run ends when every member has reported.",
        ]),
      ),
      delegatesTo: [],
    }),
  }
  return planners[team.pattern]()

  function member(m: TeamMember, i: number, after: string[], report: PlannedStep["report"], extra: string[] = []): PlannedStep {
    return {
      step: `member:${i}`,
      agent: memberName(m),
      ...(m.role ? { role: m.role } : {}),
      title: `${team.name} · ${m.role ?? memberName(m)}: ${title(goal)}`,
      prompt: memberPrompt(team, runId, goal, m, extra, context),
      after,
      report,
    }
  }

  function coordinated(): RunPlan {
    return {
      steps: [
        {
          step: "coordinator",
          agent: team.coordinator!,
          role: "coordinator",
          title: `${team.name}: ${title(goal)}`,
          prompt: coordinatorPrompt(team, runId, goal, context),
          after: [],
          report: "workflow",
        },
      ],
      resultStep: "coordinator",
      delegatesTo: members.map(memberName),
    }
  }
}

/** The files a member listed under "Artifacts:" (one "- path" per line). */
export function artifactsOf(result: string | undefined): string[] {
  if (!result) return []
  const m = /(?:^|\n)\s*(?:#+\s*)?\**Artifacts:?\**:?\s*\n((?:\s*[-*]\s+.+\n?)+)/i.exec(result)
  if (!m) return []
  return m[1]!
    .split("\n")
    .map((l) => l.replace(/^\s*[-*]\s+/, "").replace(/`/g, "").trim())
    .filter(Boolean)
}

/**
 * The points a synthesis lists under "Disagreements:" (or a "## Disagreements" heading): text on
 * the same line, then the bullets that follow (blank lines between allowed); none when it says none.
 */
export function disagreementsOf(result: string | undefined): string[] {
  if (!result) return []
  const lines = result.split("\n")
  const start = lines.findIndex((l) => /^\s*(?:#+\s*\**\s*Disagreements\b|\**\s*Disagreements\s*\**\s*:)/i.test(l))
  if (start < 0) return []
  const inline = lines[start]!.replace(/^\s*#*\s*\**\s*Disagreements\s*\**\s*:?\s*\**/i, "").trim()
  const items: string[] = []
  for (const l of lines.slice(start + 1)) {
    if (/^\s*[-*]\s+/.test(l)) items.push(l.replace(/^\s*[-*]\s+/, "").trim())
    else if (l.trim()) break
  }
  return [...(inline ? [inline] : []), ...items].filter((x) => x && !/^(none|no disagreements?|n\/a)\.?$/i.test(x))
}
