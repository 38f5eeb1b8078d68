/** A BullMQ worker: runs the queued jobs, in `switchyard-worker` or inside a backend (`--worker`). */
import type { Job, Worker } from 'bullmq'
import type { RedisLink } from '../redis/link.js'
import { bullPrefix, QUEUE, type JobData } from './redis-queue.js'
import { MAX_ATTEMPTS, runFinished, runStarted, type JobType } from './types.js'

/** Options of `RedisJobWorker`. */
export interface RedisJobWorkerOptions {
  link: RedisLink
  /** The Switchyard key prefix. No default. */
  prefix: string
  /** The job types it runs, by name. No default. */
  types: Readonly<Record<string, JobType>>
  /** Jobs run at once. No default (2 from the CLIs). */
  concurrency: number
  /**
   * Seconds a job's lock lives without its worker renewing it (BullMQ `lockDuration`, renewed
   * every half of it), and between stalled-job checks (`stalledInterval`): a job whose worker
   * died runs again within about twice this. No default (30 from the CLIs, BullMQ's own).
   */
  lockDuration: number
  /** Who runs the jobs: in their log and in the lines this worker logs, read when used. */
  id: () => string
  /** Receives a line per job that completes or fails. Default: none. */
  log?: (line: string) => void
}

/**
 * Milliseconds before a worker whose start failed is made again. BullMQ checks the server once
 * when a worker starts (`INFO`); if Redis goes away in the middle of that check, the worker
 * never takes a job, however long Redis is back: so it is dropped and another one made.
 */
const RESTART_MS = 1000

/**
 * Runs jobs from the BullMQ queue with `concurrency` at once. Every run writes to the job's
 * log (in Redis, `GET /jobs/<id>` shows it) which run it is and on which worker, so a run
 * cut short by a dead worker and the run that completed it can both be seen. A job of a type
 * this worker does not know fails at once, without retries (BullMQ `UnrecoverableError`).
 */
export class RedisJobWorker {
  readonly #options: RedisJobWorkerOptions
  readonly #log: (line: string) => void
  readonly #ready: Promise<void>
  #started!: () => void
  #current: Worker<JobData, unknown> | undefined
  #restart: NodeJS.Timeout | undefined
  #closed = false

  constructor(options: RedisJobWorkerOptions) {
    this.#options = options
    this.#log = options.log ?? (() => {})
    this.#ready = new Promise(resolve => (this.#started = resolve))
    void this.#start()
  }

  /** Resolves once a worker is connected and taking jobs. */
  ready(): Promise<void> {
    return this.#ready
  }

  /**
   * Stops taking jobs and resolves once the jobs in progress finish (BullMQ's graceful close).
   * With `force` (Redis is not answering, so they could not report back), at once. A job still
   * running when the process exits anyway is found stalled and run again.
   */
  async close(force: boolean): Promise<void> {
    this.#closed = true
    clearTimeout(this.#restart)
    await this.#current?.close(force)
  }

  async #start(): Promise<void> {
    const options = this.#options
    const [{ Worker, UnrecoverableError }, connection] = await Promise.all([import('bullmq'), options.link.client()])
    if (this.#closed) return
    const worker = new Worker<JobData, unknown>(
      QUEUE,
      async (job: Job<JobData>, _token, signal) => {
        const id = options.id()
        await job.log(runStarted(job.attemptsStarted, id))
        const type = options.types[job.name]
        if (type === undefined) throw new UnrecoverableError(`${id} knows no job type ${JSON.stringify(job.name)}`)
        try {
          return await type.run({ data: job.data, progress: percent => job.updateProgress(percent), signal: signal as AbortSignal })
        } finally {
          await job.log(runFinished(job.attemptsStarted, id))
        }
      },
      {
        connection,
        prefix: bullPrefix(options.prefix),
        concurrency: options.concurrency,
        lockDuration: options.lockDuration * 1000,
        stalledInterval: options.lockDuration * 1000,
      },
    )
    // Connection errors: the link logs the outage once; BullMQ reconnects and goes on.
    worker.on('error', (err: Error) => options.link.fail(err))
    worker.on('completed', (job: Job<JobData>) =>
      this.#log(`${options.id()}: job ${job.id} ${job.name} completed (attempt ${job.attemptsStarted})`),
    )
    worker.on('failed', (job: Job<JobData> | undefined, err: Error) => {
      const { id, name, attemptsStarted } = job as Job<JobData>
      this.#log(`${options.id()}: job ${id} ${name} failed (attempt ${attemptsStarted} of ${MAX_ATTEMPTS}): ${err.message}`)
    })
    this.#current = worker
    try {
      await worker.waitUntilReady()
    } catch {
      this.#current = undefined
      void Promise.allSettled([worker.close(true)])
      this.#restart = setTimeout(() => void this.#start(), RESTART_MS)
      return
    }
    this.#started()
  }
}
