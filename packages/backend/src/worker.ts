/** A job worker without an HTTP server: what `switchyard-worker` runs. */
import { resolveJobSettings } from './config.js'
import { report } from './jobs/report.js'
import { RedisJobWorker } from './jobs/redis-worker.js'
import type { JobType } from './jobs/types.js'
import { RedisLink } from './redis/link.js'

/** Options of `createWorker`. */
export interface WorkerOptions {
  /** The Redis URL the backends queue jobs in. Required: without Redis, jobs run in the backend. */
  redis: string
  /** Key prefix, the backends' own. Default `switchyard:`. */
  redisPrefix?: string
  /** Jobs run at once. Default 2. */
  jobsConcurrency?: number
  /** Seconds a job's lock outlives this worker if it dies (BullMQ `lockDuration`). Default 30. */
  lockDuration?: number
  /** Its name in job logs and its own lines. Default `worker-<pid>`. */
  id?: string
  /** Job types besides `report`, by name. Default: none. */
  jobTypes?: Readonly<Record<string, JobType>>
  /** Receives a line when Redis goes down and when it answers again. Default: none. */
  log?: (line: string) => void
  /** Receives a line per job completed or failed. Default: none. */
  jobLog?: (line: string) => void
}

/** A running worker. */
export interface JobWorker {
  readonly id: string
  /** The Redis URL with the password masked. */
  readonly shown: string
  /** Resolves once connected and taking jobs. */
  ready(): Promise<void>
  /** Stops taking jobs; resolves once the jobs in progress finish and the connection is closed. */
  close(): Promise<void>
}

/** Starts a worker on the job queue in `options.redis`. Throws `ConfigError` for a bad option. */
export function createWorker(options: WorkerOptions): JobWorker {
  const settings = resolveJobSettings(options, {
    redis: 'redis',
    redisPrefix: 'redisPrefix',
    jobsConcurrency: 'jobsConcurrency',
    lockDuration: 'lockDuration',
  })
  const target = settings.redis as NonNullable<typeof settings.redis>
  const id = options.id ?? `worker-${process.pid}`
  const log = options.log ?? (() => {})
  const link = new RedisLink({ target, log, name: () => id, effect: 'jobs wait until it answers' })
  const worker = new RedisJobWorker({
    link,
    prefix: settings.redisPrefix,
    types: { report, ...options.jobTypes },
    concurrency: settings.jobsConcurrency,
    lockDuration: settings.lockDuration,
    id: () => id,
    log: options.jobLog,
  })
  return {
    id,
    shown: target.shown,
    ready: () => worker.ready(),
    // With Redis down, BullMQ would wait for it to close gracefully: force it.
    close: async () => {
      await worker.close(!link.up)
      await link.close()
    },
  }
}
