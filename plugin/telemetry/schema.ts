import { z } from "zod"

/**
 * The telemetry files, one event per line, written automatically (telemetry/recorder.ts) and read
 * by the analysis (telemetry/analysis.ts). The workflow events keep the field names of the
 * original telemetry format (`timestamp`, `event`, `workflow_id`, `agent_plan`, `from_agent`, …)
 * so existing tooling reads them; what NSO adds lives under `nso`.
 */

const Iso = z.string().min(1)

/** What NSO adds to a workflow event. */
export const WorkflowExtra = z
  .object({
    /** `team` for a team run, `task` for a plain delegate (a one-agent workflow). */
    kind: z.enum(["team", "task"]),
    team: z.string().optional(),
    pattern: z.string().optional(),
    /** The session the run was started from. */
    session: z.string().optional(),
    /** How a team run ended: completed, partial, failed, cancelled. */
    phase: z.string().optional(),
  })
  .partial({ team: true, pattern: true, session: true, phase: true })

export const WorkflowStart = z.object({
  timestamp: Iso,
  event: z.literal("workflow_start"),
  workflow_id: z.string().min(1),
  project_name: z.string(),
  agent_plan: z.array(z.string()),
  estimated_duration: z.number().nonnegative().optional(),
  nso: WorkflowExtra.optional(),
})
export type WorkflowStart = z.infer<typeof WorkflowStart>

export const AgentHandoff = z.object({
  timestamp: Iso,
  event: z.literal("agent_handoff"),
  workflow_id: z.string().min(1),
  from_agent: z.string(),
  to_agent: z.string(),
  artifacts: z.array(z.string()).default([]),
})
export type AgentHandoff = z.infer<typeof AgentHandoff>

export const WorkflowComplete = z.object({
  timestamp: Iso,
  event: z.literal("workflow_complete"),
  workflow_id: z.string().min(1),
  duration_seconds: z.number().nonnegative(),
  success: z.boolean(),
  agents_executed: z.array(z.string()),
  nso: WorkflowExtra.optional(),
})
export type WorkflowComplete = z.infer<typeof WorkflowComplete>

export const WorkflowEvent = z.discriminatedUnion("event", [WorkflowStart, AgentHandoff, WorkflowComplete])
export type WorkflowEvent = z.infer<typeof WorkflowEvent>

export const Outcome = z.enum(["success", "failure", "cancelled"])
export type Outcome = z.infer<typeof Outcome>

/** One line per task, written when it ends. Times in seconds (fractions allowed). */
export const Invocation = z.object({
  timestamp: Iso,
  event: z.literal("agent_invocation"),
  task_id: z.string().min(1),
  agent: z.string().min(1),
  /** `provider/model` as OpenCode reported it on the agent's replies, when known. */
  model: z.string().optional(),
  /** A short digest of the task text (first 16 hex of its SHA-256): same text, same digest. */
  task_digest: z.string(),
  /** Words of the task (title and prompt) that say what it was about, lower case. */
  keywords: z.array(z.string()).default([]),
  /** The agent profile's tags. */
  tags: z.array(z.string()).default([]),
  /** The profile's specialization, if any. */
  domain: z.string().optional(),
  workflow_id: z.string().min(1),
  team: z.string().optional(),
  started_at: Iso,
  ended_at: Iso,
  duration_seconds: z.number().nonnegative(),
  /** When its agent worked (running), as opposed to waiting. */
  active_seconds: z.number().nonnegative(),
  waiting_seconds: z
    .object({
      /** Before it first ran: dependencies, write scope, a model slot. */
      queue: z.number().nonnegative(),
      /** In ask_user or a request, waiting for an answer. */
      answer: z.number().nonnegative(),
    })
    .default({ queue: 0, answer: 0 }),
  outcome: Outcome,
  success: z.boolean(),
  error: z.string().optional(),
  tokens: z
    .object({
      input: z.number().nonnegative(),
      output: z.number().nonnegative(),
      reasoning: z.number().nonnegative().default(0),
      cache_read: z.number().nonnegative().default(0),
      cache_write: z.number().nonnegative().default(0),
    })
    .default({ input: 0, output: 0, reasoning: 0, cache_read: 0, cache_write: 0 }),
  /** In the provider's currency unit, as OpenCode computed it. */
  cost: z.number().nonnegative().default(0),
  turns: z.number().int().nonnegative().default(0),
  tool_calls: z.number().int().nonnegative().default(0),
  retries: z.number().int().nonnegative().default(0),
  /**
   * Model turns NSO started to hand the agent messages (results of its own sub-tasks, agent
   * messages): coordination, as opposed to work. Their tokens are in `coordination_tokens`.
   */
  delivery_turns: z.number().int().nonnegative().default(0),
  coordination_tokens: z.number().nonnegative().default(0),
})
export type Invocation = z.infer<typeof Invocation>

/** File names under `.opencode/nso/telemetry/`. */
export const TELEMETRY_FILES = { workflows: "workflow_events.jsonl", invocations: "agent_invocations.jsonl" } as const
