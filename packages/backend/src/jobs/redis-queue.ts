/** The job queue on BullMQ: where any backend posts a job and reads it back. */
import { randomUUID } from 'node:crypto'
import type { Job, Queue } from 'bullmq'
import type { RedisLink } from '../redis/link.js'
import { KEEP_COMPLETED_SECONDS, KEEP_FAILED_SECONDS, MAX_ATTEMPTS, iso, type JobQueue, type JobState, type JobView } from './types.js'

/** The BullMQ queue name: one queue, every job type in it (the type is the job's name). */
export const QUEUE = 'jobs'

/** Job data, as BullMQ stores it (JSON). */
export type JobData = Record<string, unknown>

/** BullMQ's key prefix for a Switchyard prefix: `switchyard:` gives `switchyard:bull:jobs:<id>`. */
export function bullPrefix(prefix: string): string {
  return `${prefix}bull`
}

/** BullMQ's states that `JobState` names as they are; the others (delayed, prioritized, …) are waiting. */
const STATES: Readonly<Record<string, JobState>> = { active: 'active', completed: 'completed', failed: 'failed' }

/** The JSON view of a BullMQ job, with its state and log read alongside. */
export function jobView(job: Job<JobData>, state: string, log: string[]): JobView {
  return {
    id: job.id as string,
    type: job.name,
    data: job.data,
    state: STATES[state] ?? 'waiting',
    progress: Number(job.progress),
    result: job.returnvalue ?? null,
    failedReason: job.failedReason ?? null,
    attempts: job.attemptsStarted,
    maxAttempts: MAX_ATTEMPTS,
    createdAt: iso(job.timestamp) as string,
    startedAt: iso(job.processedOn),
    finishedAt: iso(job.finishedOn),
    log,
  }
}

/** Options of `RedisJobQueue`. */
export interface RedisJobQueueOptions {
  link: RedisLink
  /** The Switchyard key prefix (see `bullPrefix`). No default. */
  prefix: string
  /** Milliseconds before the first retry; BullMQ doubles it for each next one. No default. */
  backoff: number
}

/**
 * `POST /jobs` and `GET /jobs/<id>` on a BullMQ queue: a job posted on one backend is run by
 * any worker and read back from any backend. BullMQ keeps the state, the retries with
 * exponential backoff, the locks and the stalled-job recovery; finished jobs are removed
 * after an hour (completed) or a day (failed). Job ids are random UUIDs, not BullMQ's counter,
 * so one client cannot read another's jobs by counting.
 */
/**
 * BullMQ, loaded once, on first use, before a command's deadline starts: loading a module tree
 * that size takes more than the Redis timeout on a busy machine, and that is not Redis being slow
 * (it marked Redis down, and the first POST /jobs answered 503).
 */
let bullmq: Promise<typeof import('bullmq')> | undefined
const loadBullmq = (): Promise<typeof import('bullmq')> => (bullmq ??= import('bullmq'))

export class RedisJobQueue implements JobQueue {
  readonly #link: RedisLink
  readonly #prefix: string
  readonly #backoff: number
  /** The BullMQ queue, made on first use (a backend without --redis never loads BullMQ). */
  #queue: Promise<Queue<JobData, unknown>> | undefined
  /** The same, once ready: what `close()` closes. */
  #opened: Queue<JobData, unknown> | undefined

  constructor(options: RedisJobQueueOptions) {
    this.#link = options.link
    this.#prefix = options.prefix
    this.#backoff = options.backoff
  }

  async add(type: string, data: JobData): Promise<JobView> {
    await loadBullmq()
    return this.#link.run(async () => {
      const queue = await this.#ready()
      const job = await queue.add(type, data, {
        jobId: randomUUID(),
        attempts: MAX_ATTEMPTS,
        backoff: { type: 'exponential', delay: this.#backoff },
        removeOnComplete: { age: KEEP_COMPLETED_SECONDS },
        removeOnFail: { age: KEEP_FAILED_SECONDS },
      })
      return jobView(job, 'waiting', [])
    })
  }

  async get(id: string): Promise<JobView | undefined> {
    await loadBullmq()
    return this.#link.run(async () => {
      const queue = await this.#ready()
      // The state first, then the job and its log: BullMQ writes a finished job's state, reason
      // and counts in one script, so a finished state read first guarantees a final job read
      // after it. Read the other way round (or side by side), a job read during its last run
      // could pair that run's predecessor's reason with the state 'failed' (seen under load).
      const state = await queue.getJobState(id)
      const job = (await queue.getJob(id)) as Job<JobData> | undefined
      if (job === undefined || state === 'unknown') return undefined
      const { logs } = await queue.getJobLogs(id)
      return jobView(job, state, logs)
    })
  }

  /** Closes BullMQ's side of the queue; the connection is the link's to close. */
  async close(): Promise<void> {
    await this.#opened?.close()
  }

  /**
   * The queue, once BullMQ has checked the server (its `INFO` version check). BullMQ makes
   * that check once, and a queue whose check failed (Redis died in the middle of it) fails
   * every command after it; so a failed queue is dropped, and the next request makes another.
   */
  #ready(): Promise<Queue<JobData, unknown>> {
    this.#queue ??= Promise.all([loadBullmq(), this.#link.client()]).then(async ([{ Queue }, connection]) => {
      const queue = new Queue<JobData, unknown>(QUEUE, { connection, prefix: bullPrefix(this.#prefix) })
      // BullMQ passes on the client's connection errors; the link has already counted them.
      queue.on('error', () => {})
      try {
        await queue.waitUntilReady()
      } catch (err) {
        this.#queue = undefined
        void Promise.allSettled([queue.close()])
        throw err
      }
      this.#opened = queue
      return queue
    })
    return this.#queue
  }
}
