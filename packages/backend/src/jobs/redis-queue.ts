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

/**
 * BullMQ, loaded once, on first use: a backend without --redis never loads it. Loading it takes
 * hundreds of milliseconds on a cold start, which is not Redis being slow, so it happens before a
 * command's deadline starts, as the link does for node-redis. Inside the deadline, a backend's
 * first POST /jobs answered 503 and marked Redis down although the job was queued.
 */
let loaded: Promise<typeof import('bullmq')> | undefined
function bullmq(): Promise<typeof import('bullmq')> {
  return (loaded ??= import('bullmq'))
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
    const { Queue: QueueClass } = await bullmq()
    return this.#link.run(async () => {
      const queue = await this.#ready(QueueClass)
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
    const { Queue: QueueClass } = await bullmq()
    return this.#link.run(async () => {
      const queue = await this.#ready(QueueClass)
      const job = (await queue.getJob(id)) as Job<JobData> | undefined
      if (job === undefined) return undefined
      const [state, { logs }] = await Promise.all([job.getState(), queue.getJobLogs(id)])
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
  #ready(QueueClass: typeof import('bullmq').Queue): Promise<Queue<JobData, unknown>> {
    this.#queue ??= this.#link.client().then(async connection => {
      const queue = new QueueClass<JobData, unknown>(QUEUE, { connection, prefix: bullPrefix(this.#prefix) })
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
