// Every error Switchyard raises on purpose, each with a stable code, and the helpers that read an error's code.
/**
 * Every error Switchyard raises on purpose, in one place, each with a stable `code`
 * (the undici / fastify pattern): callers branch on `code`, people read `message`.
 */

/** Bad configuration or CLI input. The CLI prints the message on one line and exits 1. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError'
  readonly code = 'SWITCHYARD_CONFIG'
}

/** No upstream could be tried: every one is marked down (answered 503). */
export class NoUpstreamError extends Error {
  override readonly name = 'NoUpstreamError'
  readonly code = 'SWITCHYARD_NO_UPSTREAM'
  constructor(message = 'no upstream available: every upstream is marked down') {
    super(message)
  }
}

/** Upstreams were tried and every try failed (answered 502). */
export class UpstreamFailedError extends Error {
  override readonly name = 'UpstreamFailedError'
  readonly code = 'SWITCHYARD_UPSTREAM_FAILED'
  constructor(message = 'every upstream that was tried failed') {
    super(message)
  }
}

/** An upstream took longer than the response timeout to send its response headers (answered 504). */
export class UpstreamTimeoutError extends Error {
  override readonly name = 'UpstreamTimeoutError'
  readonly code = 'SWITCHYARD_UPSTREAM_TIMEOUT'
  constructor(message = 'upstream timed out') {
    super(message)
  }
}

/** An upstream connection took longer than the connect timeout (tried elsewhere; 504 if last). */
export class UpstreamConnectTimeoutError extends Error {
  override readonly name = 'UpstreamConnectTimeoutError'
  readonly code = 'SWITCHYARD_CONNECT_TIMEOUT'
  constructor(message = 'upstream connection timed out') {
    super(message)
  }
}

/**
 * An upstream response the balancer cannot pass on: a status outside 100–599, a head Node
 * refuses to send, or a `101 Switching Protocols` to a request that asked for no upgrade
 * (answered 502, counted as `invalid`, like a response Node's parser rejects).
 */
export class InvalidResponseError extends Error {
  override readonly name = 'InvalidResponseError'
  readonly code = 'SWITCHYARD_INVALID_RESPONSE'
}

/**
 * The code of an error from a socket or an upstream request: a system code such as
 * ECONNREFUSED, an HTTP parser code such as HPE_INVALID_STATUS, or one of ours.
 */
export function errorCode(err: Error): string {
  return String((err as NodeJS.ErrnoException).code)
}

/**
 * An error listener that does nothing, for errors already handled elsewhere or that only
 * mean a peer went away. Attaching it keeps an emitter from throwing them.
 */
export function ignoreError(): void {}
