/** What one request has counted against a `BodyBudget`. */
export interface BodyAccount {
  /**
   * Counts `bytes` more of this request's body. Answers false, counting nothing, when that
   * would take the bytes held by all requests past the bound.
   */
  take(bytes: number): boolean
  /** Gives back every byte this request counted. Calling it again gives back nothing more. */
  release(): void
}

/**
 * Request-body bytes buffered by all requests at once, against one bound. A per-request
 * limit (413) alone does not bound memory: thirty unfinished 9 MiB uploads held 270 MiB
 * (issue 11, RSS 96 → 336 MB). Bytes are counted as they arrive, not as `Content-Length`
 * declares them, so the count is what the process really holds, and a client must send a
 * byte to hold one. nginx has no such bound; it spills large bodies to disk instead
 * (`client_body_buffer_size`), which an echo server has no use for.
 */
export class BodyBudget {
  /** The bound, in bytes. */
  readonly limit: number
  #held = 0
  #peak = 0

  constructor(limit: number) {
    this.limit = limit
  }

  /** Bytes held now. */
  get held(): number {
    return this.#held
  }

  /** The most bytes held at once since the budget was made: never above `limit`. */
  get peak(): number {
    return this.#peak
  }

  /** A new request's account, empty. Release it when the request ends, however it ends. */
  open(): BodyAccount {
    let mine = 0
    return {
      take: bytes => {
        if (this.#held + bytes > this.limit) return false
        mine += bytes
        this.#held += bytes
        this.#peak = Math.max(this.#peak, this.#held)
        return true
      },
      release: () => {
        this.#held -= mine
        mine = 0
      },
    }
  }
}
