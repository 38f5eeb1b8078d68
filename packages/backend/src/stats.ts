/** The key requests are counted under once `maxKeys` distinct keys are in use. */
export const OTHER_KEY = 'other'

/**
 * Counts requests per method and path (`"POST /echo"`), so end-to-end tests can tell how
 * many times a request reached this backend. Method and path come from the client, so the
 * number of distinct keys is bounded: past `maxKeys`, new ones are counted under `other`.
 */
export class RequestStats {
  readonly #counts = new Map<string, number>()
  readonly maxKeys: number

  /** @param maxKeys Distinct keys kept before counting under `other`. Default 1000. */
  constructor(maxKeys = 1000) {
    this.maxKeys = maxKeys
  }

  count(method: string, path: string): void {
    let key = `${method} ${path}`
    if (!this.#counts.has(key) && this.#counts.size >= this.maxKeys) key = OTHER_KEY
    this.#counts.set(key, (this.#counts.get(key) ?? 0) + 1)
  }

  /** The counts so far, as `{"GET /": 3, "POST /echo": 1}`. */
  toJSON(): Record<string, number> {
    return Object.fromEntries(this.#counts)
  }
}
