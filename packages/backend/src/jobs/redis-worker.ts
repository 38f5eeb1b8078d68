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
 * Runs jobs from the BullMQ queue with `concurrency` at once. Every run writes to the job's
 * log (in Redis, `GET /jobs/<id>` shows it) which run it is and on which worker, so a run
 * cut short by a dead worker and the run that completed it can both be seen. A job of a type
 * this worker does not know fails at once, without retries (BullMQ `UnrecoverableError`).
 */
export class RedisJobWorker {
  readonly #worker: Promise<Worker<JobData, unknown>>

  constructor(options: RedisJobWorkerOptions) {
    const log = options.log ?? (() => {})
    this.#worker = Promise.all([import('bullmq'), options.link.client()]).then(([{ Worker, UnrecoverableError }, connection]) => {
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
      worker.on('completed', (job: Job<JobData>) => log(`${options.id()}: job ${job.id} ${job.name} completed (attempt ${job.attemptsStarted})`))
      worker.on('failed', (job: Job<JobData> | undefined, err: Error) => {
        const { id, name, attemptsStarted } = job as Job<JobData>
        log(`${options.id()}: job ${id} ${name} failed (attempt ${attemptsStarted} of ${MAX_ATTEMPTS}): ${err.message}`)
      })
      return worker
    })
  }

  /** Resolves once the worker is connected and taking jobs. */
  async ready(): Promise<void> {
    await (await this.#worker).waitUntilReady()
  }

  /**
   * Stops taking jobs and resolves once the jobs in progress finish (BullMQ's graceful close).
   * A job still running when the process exits anyway is found stalled and run again.
   */
  async close(): Promise<void> {
    await (await this.#worker).close()
  }
}
