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
export class RequestBody {
  #req: IncomingMessage
  #chunks: Buffer[] = []
  #size = 0
  #overflowed = false
  #started = false
  #ended = false
  #out: ClientRequest | undefined

  constructor(req: IncomingMessage) {
    this.#req = req
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
    this.#req.on('data', this.#hold)
    this.#req.once('end', this.#onEnd)
    this.#req.pipe(out)
  }

  /** Stops streaming into the request of a failed attempt. */
  detach(): void {
    if (this.#out !== undefined) this.#req.unpipe(this.#out)
    this.#out = undefined
  }

  #hold = (chunk: Buffer): void => {
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
  }
}
