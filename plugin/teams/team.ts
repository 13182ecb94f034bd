import { z } from "zod"
import { TeamPattern } from "../protocol.js"

/**
 * A team: specialist agents (profiles) run together under one collaboration pattern. A team is
 * data; running one compiles it to ordinary tasks (see plan.ts).
 */

const Name = z.string().regex(/^[a-z][a-z0-9_-]*$/, { message: 'expected a lower-case name like "code-review"' })

export const TeamMember = z
  .object({
    /** A profile name. */
    agent: Name.optional(),
    /** A team name (hierarchical teams only): that team runs as this member. */
    team: Name.optional(),
    /** What this member is in the team ("security reviewer"); shown to it and to the coordinator. */
    role: z.string().min(1).optional(),
    /** Lower runs first when slots are short (1 = first); also the member's order in a sequential team. */
    priority: z.number().int().nonnegative().optional(),
    /** What this member should contribute, added to the goal in its prompt. */
    instructions: z.string().min(1).optional(),
  })
  .strict()
  .refine((m) => (m.agent === undefined) !== (m.team === undefined), { message: "a member names exactly one of agent or team" })
export type TeamMember = z.infer<typeof TeamMember>

export const TeamRules = z
  .object({
    /** Hand the results over together once every member ended (default true). */
    wait_for_all: z.boolean().default(true),
    /** Each member's wall-clock limit, in ms; a member over it ends failed and the run goes on without it. */
    timeout_per_agent_ms: z.number().int().positive().optional(),
    /** Most model turns per member. */
    max_turns_per_agent: z.number().int().positive().optional(),
    /** Most members working at once (default: all; the model's concurrency still applies). */
    max_parallel: z.number().int().positive().optional(),
    /** When the user is asked to step in: a member failed, members disagree, or never. */
    escalation: z.enum(["on_failure", "on_disagreement", "never"]).default("on_failure"),
    /** Most levels of sub-teams under this team (hierarchical), default 2. */
    max_depth: z.number().int().min(1).max(5).default(2),
  })
  .strict()
export type TeamRules = z.infer<typeof TeamRules>

export const Team = z
  .object({
    name: Name,
    description: z.string().min(1),
    /** What the team is for, in a word or two ("incident_response"). */
    use_case: z.string().default(""),
    pattern: TeamPattern,
    /** A profile that plans and synthesises; required for coordinator_worker and hierarchical. */
    coordinator: Name.optional(),
    members: z.array(TeamMember).min(1, { message: "a team needs at least one member" }),
    /** Told to every member and the coordinator: how this team works, what a good result is. */
    instructions: z.string().default(""),
    rules: TeamRules.prefault({}),
  })
  .strict()
  .superRefine((t, ctx) => {
    if ((t.pattern === "coordinator_worker" || t.pattern === "hierarchical") && !t.coordinator)
      ctx.addIssue({ code: "custom", path: ["coordinator"], message: `a ${t.pattern} team needs a coordinator (a profile that delegates, such as orchestrator)` })
    if (t.pattern !== "hierarchical")
      t.members.forEach((m, i) => {
        if (m.team) ctx.addIssue({ code: "custom", path: ["members", i, "team"], message: "only a hierarchical team may have teams as members" })
      })
  })
export type Team = z.infer<typeof Team>

/** The members in the order they run (sequential) or are listed: by priority, then as written. */
export function orderedMembers(t: Team): TeamMember[] {
  return t.members.map((m, i) => ({ m, i })).sort((a, b) => (a.m.priority ?? Infinity) - (b.m.priority ?? Infinity) || a.i - b.i).map((x) => x.m)
}

/** A member's name: its agent, or its team. */
export const memberName = (m: TeamMember): string => (m.agent ?? m.team)!
