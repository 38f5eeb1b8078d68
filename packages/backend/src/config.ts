import { ConfigError } from './errors.js'
import { report } from './jobs/report.js'
import type { JobType } from './jobs/types.js'
import { parseRedisUrl, type RedisTarget } from './redis/url.js'

/** Options of `createBackend`. */
export interface BackendOptions {
  /**
   * The name in `X-Served-By` and in response bodies. Visible ASCII, no spaces.
   * Default `backend-<port>`, with the port the server listens on.
   */
  id?: string
  /**
   * Seconds a cached response stays fresh, like Flask-Caching's `timeout`.
   * Default 60; 0 turns the response cache off.
   */
  cacheTtl?: number
  /** Bound on the response cache's total size, in bytes (bodies plus headers). Default 64 MiB. */
  cacheMaxBytes?: number
  /** Most bytes of a request body `/echo` buffers; a longer body gets 413. Default 10 MiB. */
  maxBodyBytes?: number
  /**
   * Most request-body bytes buffered by all requests at once. A request whose body would take
   * the total past it gets 503 with `Connection: close`; the bytes of each request are given
   * back when it ends (answered, aborted, or refused). Default 64 MiB.
   */
  maxBodyBytesTotal?: number
  /**
   * Serve `GET /stats`, the request counts per method and path. Default false: the paths are
   * other clients' (a `/reset-password/<token>` shows up there), so the route is a plain 404
   * unless a test turns it on. `Backend.stats` counts either way, for code in the same process.
   */
  exposeStats?: boolean
  /**
   * Largest WebSocket message `/ws` takes, in bytes, fragments added up (ws's `maxPayload`).
   * A bigger one closes the WebSocket with 1009 "message too big" (RFC 6455 §7.4.1).
   * Default 1 MiB; ws's own default, 100 MiB, lets one client hold that much.
   */
  wsMaxMessage?: number
  /**
   * Milliseconds on a monotonic clock, for cache ages, TTLs, uptime and log durations.
   * Default `performance.now()`. Tests pass their own to move time without waiting.
   */
  clock?: () => number
  /** Receives one access-log line per request. Default: none. */
  accessLog?: (line: string) => void
  /**
   * Log `GET /healthz` too. Default false: a balancer checks every few seconds, and those lines
   * would drown the others (nginx users write `access_log off` in the health location).
   */
  logHealthChecks?: boolean
  /**
   * Receives operational lines: Redis down and answering again (one each per outage), and one
   * per job a worker inside this backend completes or fails. Default: none.
   */
  log?: (line: string) => void
  /**
   * `redis://[user:password@]host[:port][/db]` or `rediss://…`: the response cache, the sessions
   * and the job queue live in this Redis, shared by every backend that names it. Default: none,
   * all three in this process's memory.
   */
  redis?: string
  /** Prefix of every key in Redis, so several stacks can share one. Default `switchyard:`. */
  redisPrefix?: string
  /** Jobs a worker runs at once. Default 2. */
  jobsConcurrency?: number
  /** Seconds a session lives after its last visit, in memory or in Redis. Default 1800 (30 minutes). */
  sessionTtl?: number
  /**
   * Run jobs in this process. Default: true without `redis` (the in-memory queue has no other
   * worker), false with it (`switchyard-worker` runs them). False needs `redis`.
   */
  worker?: boolean
  /**
   * Seconds a job's lock outlives a worker that died: then the job runs again (BullMQ
   * `lockDuration` and `stalledInterval`). Default 30.
   */
  lockDuration?: number
  /** Milliseconds before a failed job's first retry; each next one waits twice as long. Default 1000. */
  jobBackoff?: number
  /** Job types besides `report`, by name (one named `report` replaces it). Default: none. */
  jobTypes?: Readonly<Record<string, JobType>>
  /** Milliseconds a Redis command may go unanswered before it counts as failed. Default 500. */
  redisTimeout?: number
  /**
   * Milliseconds a shared-cache entry is also kept in this process, 0 to 1000. Default 1000;
   * 0 reads Redis on every request.
   */
  cacheLocalTtl?: number
}

/** `BackendOptions` with the defaults filled in and every value checked. */
export interface ResolvedOptions {
  id: string | undefined
  cacheTtl: number
  cacheMaxBytes: number
  maxBodyBytes: number
  maxBodyBytesTotal: number
  exposeStats: boolean
  wsMaxMessage: number
  clock: () => number
  accessLog: ((line: string) => void) | undefined
  logHealthChecks: boolean
  log: (line: string) => void
  redis: RedisTarget | undefined
  redisPrefix: string
  jobsConcurrency: number
  sessionTtl: number
  worker: boolean
  lockDuration: number
  jobBackoff: number
  jobTypes: Readonly<Record<string, JobType>>
  redisTimeout: number
  cacheLocalTtl: number
}

/** The CLI's settings, by the flags' long names. */
export interface CliConfig {
  /** Default 5000; 0 picks a free port. */
  port: number
  /** Default 127.0.0.1. */
  host: string
  /** Default: `backend-<port>` (left to `createBackend`). */
  id: string | undefined
  /** Seconds. Default 60; 0 turns caching off. */
  cacheTtl: number
  /** Default 64 MiB. */
  cacheMaxBytes: number
  /** Seconds in-flight requests get after a stop signal before the process exits anyway. Default 10. */
  shutdownTimeout: number
  /** No per-request log lines. Default false. */
  quiet: boolean
  /** Log health-check requests too. Default false. */
  logHealthChecks: boolean
  /** Serve `GET /stats`. Default false. */
  exposeStats: boolean
  /** Largest WebSocket message, in bytes. Default 1 MiB. */
  wsMaxMessage: number
  /** Most request-body bytes held by all requests at once. Default 64 MiB. */
  maxBodyBytesTotal: number
  /** From --redis or REDIS_URL. Default: none. */
  redis: string | undefined
  /** Default `switchyard:`. */
  redisPrefix: string
  /** Default 2. */
  jobsConcurrency: number
  /** Seconds. Default 1800. */
  sessionTtl: number
  /** Default: on without --redis, off with it. */
  worker: boolean
  /** Seconds. Default 30. */
  lockDuration: number
}

/** The CLI flags `resolveCliConfig` reads. */
export const CLI_KEYS = [
  'port',
  'host',
  'id',
  'cache-ttl',
  'cache-max-bytes',
  'shutdown-timeout',
  'quiet',
  'log-health-checks',
  'expose-stats',
  'ws-max-message',
  'max-body-bytes-total',
  'redis',
  'redis-prefix',
  'jobs-concurrency',
  'session-ttl',
  'worker',
  'lock-duration',
] as const

export type CliKey = (typeof CLI_KEYS)[number]

const MIB = 1024 * 1024
/** A year: longer than any sensible freshness lifetime, and far inside lru-cache's limits. */
const MAX_TTL_SECONDS = 31_536_000
const MAX_SHUTDOWN_SECONDS = 3600
const MAX_CONCURRENCY = 1000
const MAX_LOCK_SECONDS = 3600

/** A whole number in [min, max], from a number or a string of digits. */
export function parseWholeNumber(value: unknown, what: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`)
  }
  return n
}

/**
 * A size in bytes: a whole number of bytes, or a string of digits with an optional
 * unit `kb`, `mb` or `gb` (1024-based, any case), e.g. `64mb`. At least 1 byte.
 */
export function parseSize(value: unknown, what: string): number {
  const m = typeof value === 'string' ? /^(\d+) ?(kb|mb|gb)?$/i.exec(value.trim()) : null
  const n = m === null ? value : Number(m[1]) * 1024 ** ['', 'kb', 'mb', 'gb'].indexOf((m[2] ?? '').toLowerCase())
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(
      `${what}: ${JSON.stringify(value)} is not a size of at least 1 byte (use bytes, or a number with kb, mb or gb, like 64mb)`,
    )
  }
  return n
}

/** An id fit for a header value and a log line: visible ASCII, no spaces. */
export function parseId(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[\x21-\x7e]+$/.test(value)) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not an id (visible ASCII without spaces, like backend-5000)`)
  }
  return value
}

/**
 * A Redis key prefix: visible ASCII without spaces, 1 to 64 characters (`switchyard:`,
 * `shop-eu:`), so that every key it starts is one a person can type into redis-cli.
 */
export function parsePrefix(value: unknown, what: string): string {
  if (typeof value !== 'string' || !/^[\x21-\x7e]{1,64}$/.test(value)) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a key prefix (1 to 64 visible ASCII characters, like switchyard:)`)
  }
  return value
}

/** The settings both a backend and a worker read for Redis and jobs, checked. */
export function resolveJobSettings(
  flags: { redis?: unknown; redisPrefix?: unknown; jobsConcurrency?: unknown; lockDuration?: unknown },
  names: { redis: string; redisPrefix: string; jobsConcurrency: string; lockDuration: string },
): { redis: RedisTarget | undefined; redisPrefix: string; jobsConcurrency: number; lockDuration: number } {
  return {
    redis: flags.redis === undefined ? undefined : parseRedisUrl(flags.redis, names.redis),
    redisPrefix: parsePrefix(flags.redisPrefix ?? 'switchyard:', names.redisPrefix),
    jobsConcurrency: parseWholeNumber(flags.jobsConcurrency ?? 2, names.jobsConcurrency, 1, MAX_CONCURRENCY),
    lockDuration: parseWholeNumber(flags.lockDuration ?? 30, names.lockDuration, 1, MAX_LOCK_SECONDS),
  }
}

/** Whether jobs run in the backend: `worker` as given, else only without Redis; false needs Redis. */
function resolveWorker(worker: unknown, redis: RedisTarget | undefined, what: string): boolean {
  const on = worker === undefined ? redis === undefined : worker === true
  if (!on && redis === undefined) {
    throw new ConfigError(`${what}: off needs --redis: without Redis, jobs can only run inside the backend that took them`)
  }
  return on
}

/** Fills in the defaults of `createBackend`'s options and checks them. */
export function resolveOptions(options: BackendOptions): ResolvedOptions {
  const jobs = resolveJobSettings(options, {
    redis: 'redis',
    redisPrefix: 'redisPrefix',
    jobsConcurrency: 'jobsConcurrency',
    lockDuration: 'lockDuration',
  })
  return {
    ...jobs,
    log: options.log ?? (() => {}),
    sessionTtl: parseWholeNumber(options.sessionTtl ?? 1800, 'sessionTtl', 1, MAX_TTL_SECONDS),
    worker: resolveWorker(options.worker, jobs.redis, 'worker'),
    jobBackoff: parseWholeNumber(options.jobBackoff ?? 1000, 'jobBackoff', 1, 3_600_000),
    jobTypes: { report, ...options.jobTypes },
    redisTimeout: parseWholeNumber(options.redisTimeout ?? 500, 'redisTimeout', 1, 60_000),
    cacheLocalTtl: parseWholeNumber(options.cacheLocalTtl ?? 1000, 'cacheLocalTtl', 0, 1000),
    id: options.id === undefined ? undefined : parseId(options.id, 'id'),
    cacheTtl: parseWholeNumber(options.cacheTtl ?? 60, 'cacheTtl', 0, MAX_TTL_SECONDS),
    cacheMaxBytes: parseSize(options.cacheMaxBytes ?? 64 * MIB, 'cacheMaxBytes'),
    maxBodyBytes: parseSize(options.maxBodyBytes ?? 10 * MIB, 'maxBodyBytes'),
    maxBodyBytesTotal: parseSize(options.maxBodyBytesTotal ?? 64 * MIB, 'maxBodyBytesTotal'),
    exposeStats: options.exposeStats === true,
    wsMaxMessage: parseSize(options.wsMaxMessage ?? MIB, 'wsMaxMessage'),
    clock: options.clock ?? (() => performance.now()),
    accessLog: options.accessLog,
    logHealthChecks: options.logHealthChecks === true,
  }
}

/**
 * Turns the CLI flags (strings as typed, `undefined` when left out) into settings, or throws
 * a `ConfigError` that names the flag, the bad value and what is allowed.
 */
export function resolveCliConfig(flags: Partial<Record<CliKey, unknown>>, env: { REDIS_URL?: string } = {}): CliConfig {
  const host = flags.host ?? '127.0.0.1'
  if (typeof host !== 'string' || host === '') {
    throw new ConfigError(`--host: ${JSON.stringify(host)} is not an address to listen on (like 127.0.0.1 or 0.0.0.0)`)
  }
  // REDIS_URL keeps a password off the command line, where `ps` shows it to every user.
  const fromEnv = flags.redis === undefined && env.REDIS_URL !== undefined && env.REDIS_URL !== ''
  const jobs = resolveJobSettings(
    {
      redis: fromEnv ? env.REDIS_URL : flags.redis,
      redisPrefix: flags['redis-prefix'],
      jobsConcurrency: flags['jobs-concurrency'],
      lockDuration: flags['lock-duration'],
    },
    {
      redis: fromEnv ? 'REDIS_URL' : '--redis',
      redisPrefix: '--redis-prefix',
      jobsConcurrency: '--jobs-concurrency',
      lockDuration: '--lock-duration',
    },
  )
  return {
    ...jobs,
    redis: jobs.redis?.url,
    sessionTtl: parseWholeNumber(flags['session-ttl'] ?? 1800, '--session-ttl', 1, MAX_TTL_SECONDS),
    worker: resolveWorker(flags.worker, jobs.redis, '--worker'),
    port: parseWholeNumber(flags.port ?? 5000, '--port', 0, 65535),
    host,
    id: flags.id === undefined ? undefined : parseId(flags.id, '--id'),
    cacheTtl: parseWholeNumber(flags['cache-ttl'] ?? 60, '--cache-ttl', 0, MAX_TTL_SECONDS),
    cacheMaxBytes: parseSize(flags['cache-max-bytes'] ?? '64mb', '--cache-max-bytes'),
    shutdownTimeout: parseWholeNumber(flags['shutdown-timeout'] ?? 10, '--shutdown-timeout', 0, MAX_SHUTDOWN_SECONDS),
    quiet: flags.quiet === true,
    logHealthChecks: flags['log-health-checks'] === true,
    exposeStats: flags['expose-stats'] === true,
    wsMaxMessage: parseSize(flags['ws-max-message'] ?? '1mb', '--ws-max-message'),
    maxBodyBytesTotal: parseSize(flags['max-body-bytes-total'] ?? '64mb', '--max-body-bytes-total'),
  }
}
