// The request body, read only once an upstream connection is open and held (up to 64 KB) so that a retry can send it again.
import type { ClientRequest, IncomingMessage } from 'node:http'

/**
 * How much of a request body is held so that an idempotent request can be sent again after
 * its upstream failed. A larger body streams through and is not retried once sent.
 */
export const HOLD_LIMIT = 64 * 1024

/**
 * A request body, read from the client only once an upstream connection is open, and held
 * (up to HOLD_LIMIT) while it streams so that it can be replayed. http-proxy would pipe the
 * body at once, so a POST to a refused upstream would lose it.
 */
export class ReplayBody {
  #req: IncomingMessage
  #chunks: Buffer[] = []
  #size = 0
  /** Bytes read from the client so far. */
  bytes = 0
  #overflowed = false
  #started = false
  #ended = false
  #out: ClientRequest | undefined
  #timeout: number
  #onTimeout: () => void
  #timer: NodeJS.Timeout | undefined

  /**
   * @param timeout Longest pause between two reads from the client, in ms (nginx
   *   client_body_timeout); a pause while the upstream is not ready for more does not count.
   * @param onTimeout Called once when the client stalls longer than that.
   */
  constructor(req: IncomingMessage, timeout: number, onTimeout: () => void) {
    this.#req = req
    this.#timeout = timeout
    this.#onTimeout = onTimeout
  }

  /** Whether an attempt has started reading the body from the client. */
  get started(): boolean {
    return this.#started
  }

  /** Whether the body can be sent (again): not read yet, or read in full and held. */
  get replayable(): boolean {
    return !this.#started || (this.#ended && !this.#overflowed)
  }

  /** Sends the body to `out`: streams it from the client the first time, replays it after. */
  sendTo(out: ClientRequest): void {
    if (this.#started) {
      out.end(Buffer.concat(this.#chunks, this.#size))
      return
    }
    this.#started = true
    this.#out = out
    this.#timer = setTimeout(this.#onTimer, this.#timeout)
    out.on('drain', this.#refresh)
    this.#req.on('data', this.#hold)
    this.#req.once('end', this.#onEnd)
    this.#req.pipe(out)
  }

  /** Stops streaming into the request of a failed attempt. */
  detach(): void {
    if (this.#out !== undefined) this.#req.unpipe(this.#out)
    this.#out = undefined
    this.stop()
  }

  /** Stops the body timer: the body ended, or the exchange is over. */
  stop(): void {
    clearTimeout(this.#timer)
  }

  #refresh = (): void => {
    ;(this.#timer as NodeJS.Timeout).refresh()
  }

  #onTimer = (): void => {
    // The upstream is not taking bytes: the client is not the one stalling ('drain' re-arms).
    if ((this.#out as ClientRequest).writableNeedDrain) return
    this.#onTimeout()
  }

  #hold = (chunk: Buffer): void => {
    ;(this.#timer as NodeJS.Timeout).refresh()
    this.bytes += chunk.length
    if (this.#overflowed) return
    this.#size += chunk.length
    if (this.#size > HOLD_LIMIT) {
      this.#overflowed = true
      this.#chunks = []
      return
    }
    this.#chunks.push(chunk)
  }

  #onEnd = (): void => {
    this.#ended = true
    this.stop()
  }
}
