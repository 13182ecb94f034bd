import { z } from "zod"

/**
 * A background shell job: a command NSO runs without a model, detached in its own process group,
 * so it costs no tokens while it runs and outlives a server restart.
 */

export const JobId = z.string().regex(/^job_[0-9A-Za-z_-]{4,64}$/, { message: 'expected a job id like "job_abc123"' })
export type JobId = z.infer<typeof JobId>

export const JobStatus = z.enum(["running", "succeeded", "failed", "cancelled", "timed_out"])
export type JobStatus = z.infer<typeof JobStatus>

export const TERMINAL_JOB_STATUSES: ReadonlySet<JobStatus> = new Set<JobStatus>(["succeeded", "failed", "cancelled", "timed_out"])

export const Job = z.object({
  id: JobId,
  command: z.string().min(1),
  title: z.string(),
  /** Absolute working folder of the command. */
  cwd: z.string().min(1),
  /** Wall-clock limit enforced by the wrapper, in ms; 0 means none. */
  timeoutMs: z.number().int().nonnegative(),
  /** The session that started it; its completion is delivered there. */
  sessionId: z.string().min(1),
  /** Set when a background agent started it: its task is not done while the job runs. */
  taskId: z.string().optional(),
  /** Who started it (agent name, or `user`). */
  startedBy: z.string().min(1),
  status: JobStatus,
  exitCode: z.number().int().optional(),
  /** The signal that ended the command (`TERM`, `KILL`, …), if one did. */
  signal: z.string().optional(),
  /** Why it ended the way it did, when the exit code does not say (cancelled by whom, lost, timed out). */
  reason: z.string().optional(),
  /** The wrapper's pid, which leads the job's process group (pgid = pid). */
  pid: z.number().int().positive(),
  pgid: z.number().int().positive(),
  /** ms since the epoch. */
  startedAt: z.number().int(),
  endedAt: z.number().int().optional(),
})
export type Job = z.infer<typeof Job>

/** What `job.ended` sets. */
export const JobEnd = Job.pick({ status: true, exitCode: true, signal: true, reason: true, endedAt: true }).partial({ exitCode: true, signal: true, reason: true })
export type JobEnd = z.infer<typeof JobEnd>

/** What the wrapper writes (atomically) when the command ended: `exit.json` in the job's folder. */
export const ExitRecord = z.object({
  /** The command's exit status; absent when a signal ended it. */
  exitCode: z.number().int().nullable(),
  signal: z.string().nullable(),
  /** ms since the epoch (second precision where the system's `date` has no sub-second field). */
  startedAt: z.number().int(),
  endedAt: z.number().int(),
  /** The wrapper's own limit ran out and it killed the group. */
  timedOut: z.boolean(),
  /** A cancel marker was present: someone asked for the stop. */
  cancelled: z.boolean(),
})
export type ExitRecord = z.infer<typeof ExitRecord>
