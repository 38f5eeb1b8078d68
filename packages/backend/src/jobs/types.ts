/** What every job queue offers, in memory or on BullMQ, and the job types it runs. */

/**
 * Where a job stands. A job waiting out its backoff before a retry is `waiting` (BullMQ says
 * `delayed`), with the last failure's reason in `failedReason`.
 */
export type JobState = 'waiting' | 'active' | 'completed' | 'failed'

/** A job as `POST /jobs` and `GET /jobs/<id>` answer it, as JSON. */
export interface JobView {
  id: string
  type: string
  data: Record<string, unknown>
  state: JobState
  /** Percent done, as the job last reported it. */
  progress: number
  /** What the job returned; null until it completes. */
  result: unknown
  /** Why the last run failed; null if none has. */
  failedReason: string | null
  /** Runs started so far, a run cut short by a dead worker included. */
  attempts: number
  /** Runs it gets at most: the first and 3 retries. */
  maxAttempts: number
  /** ISO 8601 times: when the job was posted, its last run started, and it completed or failed for good. */
  createdAt: string
  startedAt: string | null
  finishedAt: string | null
  /** What its runs wrote: a line per run started, on which worker, and one when a run finishes. */
  log: string[]
}

/** What a job type's code gets for one run. */
export interface JobRun {
  data: Record<string, unknown>
  /** Reports percent done; `GET /jobs/<id>` shows it. */
  progress(percent: number): Promise<void>
  /** Aborted when the process stops the job (in-memory jobs, at shutdown). */
  signal: AbortSignal
}

/** A kind of job: how its `POST /jobs` body is checked, and what it does. */
export interface JobType {
  /**
   * The job's data from the body's fields (all but `type`), or a one-line reason the body is
   * not a job of this type (answered 400).
   */
  parse(fields: Record<string, unknown>): Record<string, unknown> | string
  /** Does the job; resolves with its result, rejects to fail the run (it is retried). */
  run(run: JobRun): Promise<unknown>
}

/** Job queues, whichever engine keeps them. */
export interface JobQueue {
  /**
   * Queues a job of a known `type` with checked `data`. Rejects with `RedisUnavailableError`
   * when Redis does not answer, or `QueueFullError` when the in-memory queue is full.
   */
  add(type: string, data: Record<string, unknown>): Promise<JobView>
  /** The job with `id`, or undefined if there is none (never was, or forgotten). */
  get(id: string): Promise<JobView | undefined>
}

/** Runs a job gets: the first, then 3 retries (BullMQ `attempts`). */
export const MAX_ATTEMPTS = 4

/** Seconds a finished job stays readable: completed ones an hour, failed ones a day (BullMQ `removeOnComplete`/`removeOnFail` ages). */
export const KEEP_COMPLETED_SECONDS = 3600
export const KEEP_FAILED_SECONDS = 86_400

/** The first line a run writes to its job's log: which run, on which worker. */
export function runStarted(attempt: number, worker: string): string {
  return `run ${attempt} started on ${worker}`
}

/** The line a run writes when it finishes. */
export function runFinished(attempt: number, worker: string): string {
  return `run ${attempt} finished on ${worker}`
}

/** An ISO 8601 time from milliseconds since the epoch, or null for none. */
export function iso(ms: number | undefined): string | null {
  return ms === undefined ? null : new Date(ms).toISOString()
}
