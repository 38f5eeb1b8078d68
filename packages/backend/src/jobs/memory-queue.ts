/** Jobs in process memory: the embedded default, run by the backend that took them. */
import { randomUUID } from 'node:crypto'
import { LRUCache } from 'lru-cache'
import { QueueFullError } from '../errors.js'
import { KEEP_COMPLETED_SECONDS, MAX_ATTEMPTS, runFinished, runStarted, iso, type JobQueue, type JobType, type JobView } from './types.js'

/** Options of `MemoryJobQueue`. */
export interface MemoryJobQueueOptions {
  /** The job types it knows, by name. No default. */
  types: Readonly<Record<string, JobType>>
  /** Jobs run at once. No default (`BackendOptions.jobsConcurrency`: 2). */
  concurrency: number
  /** Milliseconds before the first retry; each next one waits twice as long. No default. */
  backoff: number
  /** Who runs the jobs, for their log: the backend's id, read when a run starts. */
  worker: () => string
  /** Unfinished jobs held at most; past it `add` rejects with `QueueFullError`. Default 10,000. */
  maxPending?: number
  /** Finished jobs remembered at most (the oldest go first), each for an hour. Default 10,000. */
  maxFinished?: number
}

/** A job and its state, kept by this process alone. */
interface Job extends Omit<JobView, 'createdAt' | 'startedAt' | 'finishedAt' | 'log'> {
  createdAt: number
  startedAt: number | undefined
  finishedAt: number | undefined
  log: string[]
}

/**
 * The in-process stand-in for BullMQ, with the same API and rules: `concurrency` jobs at once,
 * 3 retries with exponential backoff, then `failed` with the reason. What it lacks: the jobs
 * live and die with this process (a restart loses them, finished or not), and no other
 * backend can see or run them. BullMQ does no work without Redis, so this small runner is
 * the one place job state is kept by hand.
 */
export class MemoryJobQueue implements JobQueue {
  readonly #types: Readonly<Record<string, JobType>>
  readonly #concurrency: number
  readonly #backoff: number
  readonly #worker: () => string
  readonly #maxPending: number
  /** Waiting (first run, or between retries) or active. */
  readonly #pending = new Map<string, Job>()
  /** Completed or failed; lru-cache forgets them by age and count. */
  readonly #finished: LRUCache<string, Job>
  /** Ready to run, oldest first. */
  readonly #ready: Job[] = []
  readonly #retries = new Set<NodeJS.Timeout>()
  readonly #stop = new AbortController()
  #active = 0

  constructor(options: MemoryJobQueueOptions) {
    this.#types = options.types
    this.#concurrency = options.concurrency
    this.#backoff = options.backoff
    this.#worker = options.worker
    this.#maxPending = options.maxPending ?? 10_000
    this.#finished = new LRUCache({ max: options.maxFinished ?? 10_000, ttl: KEEP_COMPLETED_SECONDS * 1000 })
  }

  async add(type: string, data: Record<string, unknown>): Promise<JobView> {
    if (this.#pending.size >= this.#maxPending) throw new QueueFullError(`the job queue holds ${this.#maxPending} unfinished jobs`)
    const job: Job = {
      id: randomUUID(),
      type,
      data,
      state: 'waiting',
      progress: 0,
      result: null,
      failedReason: null,
      attempts: 0,
      maxAttempts: MAX_ATTEMPTS,
      createdAt: Date.now(),
      startedAt: undefined,
      finishedAt: undefined,
      log: [],
    }
    this.#pending.set(job.id, job)
    this.#ready.push(job)
    this.#pump()
    return view(job)
  }

  async get(id: string): Promise<JobView | undefined> {
    const job = this.#pending.get(id) ?? this.#finished.get(id)
    return job === undefined ? undefined : view(job)
  }

  /** Stops: runs in progress are aborted, retries dropped. The jobs are lost, as on any restart. */
  close(): void {
    this.#stop.abort()
    for (const timer of this.#retries) clearTimeout(timer)
  }

  #pump(): void {
    while (this.#active < this.#concurrency && this.#ready.length > 0 && !this.#stop.signal.aborted) {
      void this.#run(this.#ready.shift() as Job)
    }
  }

  async #run(job: Job): Promise<void> {
    this.#active++
    const worker = this.#worker()
    job.state = 'active'
    job.attempts++
    job.startedAt = Date.now()
    job.log.push(runStarted(job.attempts, worker))
    const type = this.#types[job.type] as JobType
    try {
      job.result = await type.run({ data: job.data, progress: async percent => void (job.progress = percent), signal: this.#stop.signal })
      job.log.push(runFinished(job.attempts, worker))
      this.#finish(job, 'completed')
    } catch (err) {
      // Stopped: the job is lost with the process; no retry may outlive it.
      if (this.#stop.signal.aborted) return
      job.failedReason = (err as Error).message
      job.log.push(runFinished(job.attempts, worker))
      if (job.attempts >= MAX_ATTEMPTS) {
        this.#finish(job, 'failed')
      } else {
        // BullMQ's exponential backoff: delay × 2^(retry − 1).
        job.state = 'waiting'
        const timer = setTimeout(
          () => {
            this.#retries.delete(timer)
            this.#ready.push(job)
            this.#pump()
          },
          this.#backoff * 2 ** (job.attempts - 1),
        )
        this.#retries.add(timer)
      }
    } finally {
      this.#active--
      this.#pump()
    }
  }

  #finish(job: Job, state: 'completed' | 'failed'): void {
    job.state = state
    job.finishedAt = Date.now()
    this.#pending.delete(job.id)
    this.#finished.set(job.id, job)
  }
}

/** The JSON view of a job: a copy, so a caller cannot change the job. */
function view(job: Job): JobView {
  return {
    ...job,
    data: { ...job.data },
    createdAt: iso(job.createdAt) as string,
    startedAt: iso(job.startedAt),
    finishedAt: iso(job.finishedAt),
    log: [...job.log],
  }
}
