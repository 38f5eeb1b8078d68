/** Sessions in Redis, shared by every backend that names the same Redis and prefix. */
import type { RedisLink } from '../redis/link.js'
import { newSessionId, type SessionStore, type Visit } from './store.js'

/** Options of `RedisSessionStore`. */
export interface RedisSessionStoreOptions {
  link: RedisLink
  /** Key prefix: a session is `<prefix>sess:<sid>`. No default. */
  prefix: string
  /** Seconds a session lives after its last visit (Redis `PX`, set again on each visit). No default. */
  ttl: number
}

/**
 * One visit, atomically: count it and restart the idle timeout if the session exists, and
 * answer nil if it does not. `INCR` alone would create any key a client names, so a forged
 * cookie would become a session of the client's choosing; and a value that is not a count
 * (bytes someone else wrote) is no session either, rather than an error.
 */
const VISIT = `local visits = tonumber(redis.call('GET', KEYS[1]))
if not visits then return false end
redis.call('SET', KEYS[1], visits + 1, 'PX', ARGV[1])
return visits + 1`

/**
 * Visit counters in Redis (`<prefix>sess:<sid>` holds the count), each with a TTL that slides
 * on every visit: any backend reads and counts any session, so round-robin without sticky
 * cookies keeps the count (the tutorial FAQ's "shared session store").
 */
export class RedisSessionStore implements SessionStore {
  readonly #link: RedisLink
  readonly #prefix: string
  readonly #ttlMs: string

  constructor(options: RedisSessionStoreOptions) {
    this.#link = options.link
    this.#prefix = options.prefix
    this.#ttlMs = String(options.ttl * 1000)
  }

  async visit(sid: string | undefined): Promise<Visit> {
    if (sid !== undefined) {
      const visits = await this.#link.run(c => c.eval(VISIT, { keys: [this.#key(sid)], arguments: [this.#ttlMs] }))
      if (typeof visits === 'number') return { sid, visits, created: false }
    }
    const fresh = newSessionId()
    await this.#link.run(c => c.set(this.#key(fresh), '1', { PX: Number(this.#ttlMs) }))
    return { sid: fresh, visits: 1, created: true }
  }

  async peek(sid: string): Promise<number | undefined> {
    const visits = Number(await this.#link.run(c => c.get(this.#key(sid))))
    // GET of a missing key answers null (0 here), and a session always holds at least 1.
    return Number.isInteger(visits) && visits > 0 ? visits : undefined
  }

  #key(sid: string): string {
    return `${this.#prefix}sess:${sid}`
  }
}
