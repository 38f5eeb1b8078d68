// Which failed tries may go again, and what a request is answered when no try is left (Caddy's tryAgain and statusError).
import { InvalidResponseError, NoUpstreamError, UpstreamConnectTimeoutError, UpstreamTimeoutError, errorCode } from '../errors.js'
import { describeTlsFailure } from '../upstreams/tls.js'
import type { Upstream } from '../upstreams/upstream.js'

/**
 * Methods that may be sent again after the upstream got them (RFC 9110 §9.2.2), as nginx's
 * proxy_next_upstream: POST and PATCH are never sent twice.
 */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])

/** A request body as retrying sees it (a ReplayBody): whether it can be sent again. */
export interface Replayable {
  readonly replayable: boolean
}

/** Whether a request the upstream may have got can be sent again: idempotent, and a body that is empty or held in full. */
function replayable(method: string, body: Replayable | undefined): boolean {
  return IDEMPOTENT.has(method) && (body === undefined || body.replayable)
}

/**
 * Whether a try that failed on a reused keep-alive connection before any response may be sent
 * again to the same upstream on a new one: only when the request could be replayed anyway. It
 * happens once per upstream: the new connection is never a reused one.
 */
export function mayResend(method: string, body: Replayable | undefined): boolean {
  return replayable(method, body)
}

/**
 * Whether a failed try may go on to another upstream (Caddy's `tryAgain`, with nginx's rules):
 * a request that never reached the upstream (`connected` false) always may, a connect timeout
 * included; one that did only if it is replayable, and not after a response timeout unless
 * `retryOnTimeout` says so.
 */
export function mayRetry(connected: boolean, err: Error, method: string, body: Replayable | undefined, retryOnTimeout: boolean): boolean {
  if (!connected) return true
  // A 504 should come after one timeout, not after one per upstream.
  if (err instanceof UpstreamTimeoutError && !retryOnTimeout) return false
  return replayable(method, body)
}

/**
 * The status to answer when the last try of a request failed with `err` (Caddy's
 * `statusError`): a timeout, connecting or waiting for the response, is 504 as in nginx;
 * anything else from the upstream is 502.
 */
export function statusForUpstreamError(err: Error): 502 | 504 {
  return err instanceof UpstreamTimeoutError || err instanceof UpstreamConnectTimeoutError ? 504 : 502
}

/** What a request or an upgrade is answered when it gives up: its status and one line of text. */
export interface GiveUp {
  status: 502 | 503 | 504
  message: string
}

/** The timeouts a give-up answer names. */
export interface Timeouts {
  connectTimeout: number
  timeout: number
}

/** A duration as the flags write it: `500ms`, `5s`, `1.5s`. */
function shown(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`
}

/**
 * What happened to a try, in words a client may read: nginx's error pages say no more than the
 * status, and the codes (ECONNREFUSED, SWITCHYARD_UPSTREAM_TIMEOUT) stay in the log line and the
 * metrics, where an operator looks.
 */
export function whatHappened(err: Error, timeouts: Timeouts): string {
  if (err instanceof UpstreamTimeoutError) return `did not answer within ${shown(timeouts.timeout)}`
  if (err instanceof UpstreamConnectTimeoutError) return `could not be connected to within ${shown(timeouts.connectTimeout)}`
  const code = errorCode(err)
  if (err instanceof InvalidResponseError || code.startsWith('HPE_')) return 'sent a response that is not valid HTTP'
  if (code === 'ECONNREFUSED') return 'refused the connection'
  if (code === 'ECONNRESET' || code === 'EPIPE') return 'closed the connection without a complete answer'
  if (describeTlsFailure(err) !== undefined) return 'could not be reached over TLS: its certificate or handshake failed'
  return 'could not be reached'
}

/**
 * The answer when no try is left: 503 when no upstream could be tried (every one down or, with
 * `full`, every one at max_conns), else 502 or 504 for the last try's error on `last`, saying in
 * words what happened and how many upstreams were tried.
 */
export function giveUpAnswer(
  lastError: Error | undefined,
  last: Upstream | undefined,
  { full = false, tries = 1, timeouts }: { full?: boolean; tries?: number; timeouts: Timeouts },
): GiveUp {
  if (lastError === undefined) {
    const why = full ? 'every upstream is at max_conns' : new NoUpstreamError().message
    return { status: 503, message: `503 Service Unavailable: ${why}` }
  }
  const status = statusForUpstreamError(lastError)
  const what = status === 504 ? '504 Gateway Timeout' : '502 Bad Gateway'
  const happened = whatHappened(lastError, timeouts)
  const which = tries > 1 ? `${tries} upstreams were tried; the last, ${last?.id},` : `upstream ${last?.id}`
  return { status, message: `${what}: ${which} ${happened}` }
}
