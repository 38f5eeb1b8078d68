/** Where a backend keeps its cache, sessions and jobs: in its own memory, or in Redis. */
import { ResponseCache } from './cache/memory-cache.js'
import type { CacheLayer } from './cache/rules.js'
import { SharedResponseCache } from './cache/shared-cache.js'
import type { ResolvedOptions } from './config.js'
import { MemoryJobQueue } from './jobs/memory-queue.js'
import { RedisJobQueue } from './jobs/redis-queue.js'
import { RedisJobWorker } from './jobs/redis-worker.js'
import type { JobQueue } from './jobs/types.js'
import { RedisLink } from './redis/link.js'
import { MemorySessionStore } from './sessions/memory-store.js'
import { RedisSessionStore } from './sessions/redis-store.js'
import type { SessionStore } from './sessions/store.js'

/** A backend's state, and how to let go of it. */
export interface BackendState {
  cache: CacheLayer
  sessions: SessionStore
  jobs: JobQueue
  /** What `/healthz` says about Redis; undefined without Redis. */
  redis: () => { redis: 'up' | 'down' } | undefined
  /** Stops the worker (its jobs in progress finish first) and closes the connections. */
  close: () => Promise<void>
}

/**
 * The state of a backend with `options`: everything in this process's memory without
 * `redis` (the embedded default, which needs nothing installed), or everything in Redis with
 * it, so that every backend on that Redis shares it. Only the response cache's in-process
 * copies (at most `cacheLocalTtl` ms), the request counts, the body budget and the
 * WebSockets stay per process either way.
 */
export function createState(options: ResolvedOptions, id: () => string): BackendState {
  const {
    clock,
    cacheTtl: ttl,
    cacheMaxBytes: maxBytes,
    sessionTtl,
    jobTypes: types,
    jobsConcurrency: concurrency,
    jobBackoff: backoff,
  } = options
  const target = options.redis
  if (target === undefined) {
    const jobs = new MemoryJobQueue({ types, concurrency, backoff, worker: id })
    return {
      cache: new ResponseCache({ ttl, maxBytes, clock }),
      sessions: new MemorySessionStore({ ttl: sessionTtl, clock }),
      jobs,
      redis: () => undefined,
      close: async () => jobs.close(),
    }
  }
  const link = new RedisLink({
    target,
    timeout: options.redisTimeout,
    log: options.log,
    name: id,
    effect: 'the cache is bypassed, /session and /jobs answer 503',
  })
  const prefix = options.redisPrefix
  const queue = new RedisJobQueue({ link, prefix, backoff })
  const worker = options.worker
    ? new RedisJobWorker({ link, prefix, types, concurrency, lockDuration: options.lockDuration, id, log: options.log })
    : undefined
  return {
    cache: new SharedResponseCache({ ttl, maxBytes, clock, link, prefix, localTtl: options.cacheLocalTtl }),
    sessions: new RedisSessionStore({ link, prefix, ttl: sessionTtl }),
    jobs: queue,
    redis: () => ({ redis: link.up ? 'up' : 'down' }),
    // With Redis down, BullMQ would wait for it to close gracefully: force the worker, and
    // close the connection before the queue, so that nothing waits on a Redis that is gone.
    close: async () => {
      await worker?.close(!link.up)
      await link.close()
      await queue.close()
    },
  }
}
