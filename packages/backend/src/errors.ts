/**
 * Every error the backend raises on purpose, in one place, each with a stable `code`
 * (the undici / fastify pattern): callers branch on `code`, people read `message`.
 */

/** Bad options or CLI input. The CLI prints the message on one line and exits 1. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'SWITCHYARD_BACKEND_CONFIG'
  constructor(message = 'invalid configuration') {
    super(message)
  }
}

/**
 * Buffering a request body would take the bytes held by all requests at once past
 * `maxBodyBytesTotal` (answered 503).
 */
export class BodyBudgetError extends Error {
  override readonly name = 'BodyBudgetError'
  readonly code = 'SWITCHYARD_BACKEND_BODY_BUDGET'
  constructor(message = 'request bodies held at once are at their bound') {
    super(message)
  }
}

/** A request body went over the most the backend buffers (answered 413). */
export class BodyTooLargeError extends Error {
  override readonly name = 'BodyTooLargeError'
  readonly code = 'SWITCHYARD_BACKEND_BODY_TOO_LARGE'
  constructor(message = 'request body too large') {
    super(message)
  }
}

/**
 * Redis did not answer: it is down, stopped, unreachable, or slower than the command timeout.
 * The cache bypasses it; `/session` and `/jobs` answer 503.
 */
export class RedisUnavailableError extends Error {
  override readonly name = 'RedisUnavailableError'
  readonly code = 'SWITCHYARD_BACKEND_REDIS_UNAVAILABLE'
  constructor(message = 'Redis is not answering') {
    super(message)
  }
}

/** The in-memory job queue holds as many unfinished jobs as it may (answered 503). */
export class QueueFullError extends Error {
  override readonly name = 'QueueFullError'
  readonly code = 'SWITCHYARD_BACKEND_QUEUE_FULL'
  constructor(message = 'the job queue is full') {
    super(message)
  }
}
