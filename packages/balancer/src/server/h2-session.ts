// Limits on one HTTP/2 connection, as nginx sets them: idle and first-request timeouts, and the rapid-reset defence (CVE-2023-44487).
import { constants, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'

/** Options of `watchSession`. Durations in ms. */
export interface H2SessionLimits {
  /** Streams open at once on a connection (SETTINGS_MAX_CONCURRENT_STREAMS; nginx `http2_max_concurrent_streams`). Default 128. */
  maxStreams: number
  /** Time for the first request once the connection is open (the HTTP/1.1 header timeout's place). */
  firstRequestTimeout: number
  /** How long a connection with no stream in flight is kept (nginx `keepalive_timeout`). */
  idleTimeout: number
}

/** Why a connection was closed early, for one log line. */
export type SessionAbuse = { kind: 'rapid-reset'; resets: number; address: string }

/**
 * Streams reset (by the client, or by nghttp2 over the client's protocol errors) that a
 * connection may spend at once, as a multiple of maxStreams; it earns them back at a tenth of
 * maxStreams per second. 256 and 12.8/s by default: a browser cancels a page's requests when it
 * leaves the page, well below that; the 2023 attack resets thousands a second.
 */
const RESET_BURST = 2
const RESET_REFILL_PER_S = 0.1

/**
 * Watches one HTTP/2 connection:
 * - **Rapid reset** (CVE-2023-44487, and 2025's "MadeYouReset", where the server's own resets
 *   over malformed frames do the same work): every stream that closes with an error code costs
 *   a token from a bucket of 2 × maxStreams, refilled at maxStreams / 10 per second; an empty
 *   bucket ends the connection with GOAWAY ENHANCE_YOUR_CALM. nghttp2 1.57+ limits RST_STREAM
 *   frames the client sends (1000, then 33/s); this is lower, and counts the resets nghttp2
 *   sends too. A stream the balancer ends itself closes with NO_ERROR and costs nothing, nor does
 *   one it resets itself (resetStream).
 * - **Idle**: a connection with no stream in flight closes after `idleTimeout` (GOAWAY, then
 *   close), and one whose first request does not come within `firstRequestTimeout` too, as an
 *   HTTP/1.1 connection that sends no header block. A stream in flight keeps it open however
 *   long it takes: its own body and response timeouts are the forward path's, per stream.
 */
export function watchSession(session: ServerHttp2Session, limits: H2SessionLimits, onAbuse: (abuse: SessionAbuse) => void): void {
  const watch = new SessionWatch(session, limits, onAbuse)
  session.on('stream', (stream: Watched) => watch.opened(stream))
  session.once('close', () => clearTimeout(watch.idle))
}

/** The watch of the connection a stream belongs to, for the shared 'close' listener below. */
const kWatch = Symbol('switchyard.sessionWatch')
/** Marks a stream the balancer reset itself (resetStream). */
const kOwnReset = Symbol('switchyard.ownReset')
type Watched = ServerHttp2Stream & { [kWatch]?: SessionWatch; [kOwnReset]?: true }

/**
 * Resets `stream` with INTERNAL_ERROR: a response the balancer cannot finish (its upstream cut it
 * short) must not reach the client as a whole one. nginx does the same (ngx_http_v2_close_stream
 * sends RST_STREAM INTERNAL_ERROR for a stream whose output is not closed). Node's
 * `stream.destroy()` with no error would send END_STREAM, and the client would read a truncated
 * body as complete. The reset is the balancer's doing, not the client's: it costs the client
 * nothing of its reset allowance.
 */
export function resetStream(stream: ServerHttp2Stream): void {
  ;(stream as Watched)[kOwnReset] = true
  stream.destroy(new Error('reset by the balancer: the response could not be finished'))
}

/** One connection's reset bucket and idle timer (watchSession). */
class SessionWatch {
  readonly #session: ServerHttp2Session
  readonly #limits: H2SessionLimits
  readonly #onAbuse: (abuse: SessionAbuse) => void
  readonly #burst: number
  readonly #refill: number
  /** Read at the start: a closed socket has no address left to report. */
  readonly #address: string
  #tokens: number
  #at = performance.now()
  #resets = 0
  #open = 0
  idle: NodeJS.Timeout | undefined

  constructor(session: ServerHttp2Session, limits: H2SessionLimits, onAbuse: (abuse: SessionAbuse) => void) {
    this.#session = session
    this.#limits = limits
    this.#onAbuse = onAbuse
    this.#burst = RESET_BURST * limits.maxStreams
    this.#refill = RESET_REFILL_PER_S * limits.maxStreams
    this.#tokens = this.#burst
    this.#address = String(session.socket.remoteAddress)
    this.idle = setTimeout(close, limits.firstRequestTimeout, session)
  }

  opened(stream: Watched): void {
    this.#open++
    clearTimeout(this.idle)
    this.idle = undefined
    // A shared listener, not a closure per stream: it finds this watch on the stream.
    stream[kWatch] = this
    stream.on('close', onStreamClose)
  }

  closed(stream: ServerHttp2Stream): void {
    const session = this.#session
    if (--this.#open === 0 && !session.closed) this.idle = setTimeout(close, this.#limits.idleTimeout, session)
    if (stream.rstCode === constants.NGHTTP2_NO_ERROR || session.destroyed || (stream as Watched)[kOwnReset] === true) return
    this.#resets++
    const now = performance.now()
    this.#tokens = Math.min(this.#burst, this.#tokens + ((now - this.#at) / 1000) * this.#refill) - 1
    this.#at = now
    if (this.#tokens >= 0) return
    this.#onAbuse({ kind: 'rapid-reset', resets: this.#resets, address: this.#address })
    // GOAWAY first: destroy(undefined, code) alone closes the socket before its GOAWAY is out.
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM)
    session.destroy()
  }
}

function onStreamClose(this: Watched): void {
  ;(this[kWatch] as SessionWatch).closed(this)
}

/** GOAWAY, then close once the streams in flight (none: it is idle) are done. */
function close(session: ServerHttp2Session): void {
  session.close()
}
