/** The response cache in Redis, shared by every backend that names the same Redis and prefix. */
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { LRUCache } from 'lru-cache'
import type { RedisLink } from '../redis/link.js'
import type { BufferedResponse, Handler } from '../response.js'
import {
  bypass,
  cacheKey,
  entrySize,
  fresh,
  hit,
  isStorable,
  mayUseCache,
  wantsRefresh,
  type CacheLayer,
  type Entry,
  type FetchContext,
} from './rules.js'

/** Options of `SharedResponseCache`. */
export interface SharedResponseCacheOptions {
  /** Seconds an entry stays fresh (Redis `PX`); 0 turns the cache off. No default. */
  ttl: number
  /** Largest entry stored, in bytes; also the bound of the in-process copies. No default. */
  maxBytes: number
  /** Milliseconds on a monotonic clock, for the age of in-process copies. No default. */
  clock: () => number
  link: RedisLink
  /** Key prefix: entries are `<prefix>cache:<target>`, locks `<prefix>lock:<target>`. No default. */
  prefix: string
  /**
   * Milliseconds an entry read from Redis is also kept in process memory, 0 to 1000: within it,
   * a hot key costs no round trip, and another backend's refresh shows up that much later.
   * Default 1000; 0 reads Redis on every request.
   */
  localTtl?: number
  /**
   * Milliseconds the fill lock lives (`SET NX PX`), and the longest another machine waits
   * for the entry before running the handler itself. Longer than the slowest route (`/slow`
   * takes up to 10 s). Default 15,000.
   */
  lockTtl?: number
  /** Milliseconds between looks for an entry another machine is filling. Default 20. */
  pollInterval?: number
}

/** Where a looked-up key stands. */
interface Found {
  /** The entry, when Redis has it. */
  entry?: Entry
  /** Milliseconds the entry has left in Redis. */
  remaining: number
  /** Whether another machine holds the fill lock. */
  locked: boolean
}

/** SET NX PX of the fill lock (KEYS[1]), then GET and PTTL of the entry (KEYS[2]), as one step (SharedResponseCache's #lock). */
const LOCK_AND_LOOK = `local took = redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1])
return {took and 1 or 0, redis.call('GET', KEYS[2]), redis.call('PTTL', KEYS[2])}`

/**
 * Entry bytes in Redis: a 4-byte length, that many bytes of JSON `{status, headers}`, then the
 * body as it is. One string value, so one GET reads it and one SET with `PX` writes it.
 */
export function encodeEntry(response: BufferedResponse): Buffer {
  const meta = Buffer.from(JSON.stringify({ status: response.status, headers: response.headers }))
  const length = Buffer.alloc(4)
  length.writeUInt32BE(meta.length)
  return Buffer.concat([length, meta, response.body])
}

/** The response in `value`, or undefined when it is not what `encodeEntry` writes. */
export function decodeEntry(value: Buffer): BufferedResponse | undefined {
  try {
    const end = 4 + value.readUInt32BE(0)
    const meta = JSON.parse(value.subarray(4, end).toString()) as { status: unknown; headers: unknown }
    const { status, headers } = meta
    const valid =
      Number.isInteger(status) &&
      typeof headers === 'object' &&
      headers !== null &&
      Object.values(headers).every(v => typeof v === 'string')
    return valid ? { status: status as number, headers: headers as Record<string, string>, body: value.subarray(end) } : undefined
  } catch {
    // Too short for its length field, or JSON cut off or broken: someone else's bytes.
    return undefined
  }
}

/**
 * The response cache in Redis: the same rules as `ResponseCache` (what is stored, `X-Cache`,
 * `Age`, the TTL), but one cache for every backend, so a MISS on one backend makes the same
 * request a HIT on the others. The entry is written before the MISS response is sent.
 *
 * Misses coalesce twice over. Within a process, lru-cache's `fetch` runs one fill per key.
 * Across machines, the fill takes a Redis lock (`SET <prefix>lock:<key> NX PX`); a machine
 * that finds it taken looks for the entry every `pollInterval` ms until it lands, the lock
 * goes (the response could not be stored) or `lockTtl` passes, and then runs the handler
 * itself. Polling rather than pub/sub: a lock holder that dies publishes nothing, so the
 * waiters would need the poll anyway.
 *
 * `Age` comes from Redis's own clock: the entry's `PTTL` says how much of the TTL is gone,
 * whichever machine stored it, whatever their clocks say. The in-process copies (at most
 * `localTtl` ms) keep that age and add their own time.
 *
 * When Redis does not answer, the request runs its handler and is answered `X-Cache: BYPASS`;
 * the `RedisLink` logs the outage once.
 */
export class SharedResponseCache implements CacheLayer {
  readonly ttl: number
  readonly #clock: () => number
  readonly #link: RedisLink
  readonly #prefix: string
  readonly #maxBytes: number
  readonly #localTtl: number
  readonly #lockTtl: number
  readonly #pollInterval: number
  /** In-process copies, and the one fill per key at a time. Absent when the TTL is 0. */
  readonly #lru: LRUCache<string, Entry, FetchContext> | undefined

  constructor(options: SharedResponseCacheOptions) {
    this.ttl = options.ttl
    this.#clock = options.clock
    this.#link = options.link
    this.#prefix = options.prefix
    this.#maxBytes = options.maxBytes
    this.#localTtl = options.localTtl ?? 1000
    this.#lockTtl = options.lockTtl ?? 15_000
    this.#pollInterval = options.pollInterval ?? 20
    this.#lru =
      options.ttl === 0
        ? undefined
        : new LRUCache<string, Entry, FetchContext>({
            // Each copy gets its own TTL when it is stored (`#keep`); this is the upper bound.
            ttl: Math.max(this.#localTtl, 1),
            ttlResolution: 0,
            perf: { now: options.clock },
            maxSize: options.maxBytes,
            maxEntrySize: options.maxBytes,
            sizeCalculation: entrySize,
            fetchMethod: async (key, _stale, { context, options: set }) => {
              const found = await this.#fill(key, context)
              // Never past the entry's own time left in Redis.
              if (found !== undefined) set.ttl = Math.max(1, Math.min(this.#localTtl, found.remaining))
              return found?.entry
            },
          })
  }

  async serve(req: IncomingMessage, handler: Handler, variant = ''): Promise<BufferedResponse> {
    const lru = this.#lru
    if (lru === undefined || !mayUseCache(req)) return bypass(await handler())
    const key = cacheKey(req.url as string, variant)
    const refresh = wantsRefresh(req)
    if (req.method === 'HEAD') return this.#head(lru, key, refresh, handler)
    const context: FetchContext = { handler, refresh }
    const entry = await lru.fetch(key, { context, forceRefresh: refresh })
    // lru-cache has no "coalesce but do not keep": with no local copies, drop it at once
    // (every request that shared this fetch already holds the entry).
    if (this.#localTtl === 0) lru.delete(key)
    if (context.response !== undefined) return context.unstored ? bypass(context.response) : fresh(context.response, this.ttl)
    if (entry !== undefined) return hit(entry, this.#clock(), this.ttl)
    // This request waited on another's handler run whose response was not stored: run the
    // handler for this request too.
    return bypass(await handler())
  }

  /** A HEAD: answered from an entry (local or in Redis) if there is one; it stores nothing. */
  async #head(lru: LRUCache<string, Entry, FetchContext>, key: string, refresh: boolean, handler: Handler): Promise<BufferedResponse> {
    try {
      const entry = refresh ? undefined : (lru.get(key) ?? (await this.#look(key)).entry)
      return entry === undefined ? fresh(await handler(), this.ttl) : hit(entry, this.#clock(), this.ttl)
    } catch {
      return bypass(await handler())
    }
  }

  /**
   * One fill of `key`: the entry from Redis, or from another machine's handler run, or from
   * this request's own (stored before it returns). `context` says which, and whether the
   * response could be stored.
   */
  async #fill(key: string, context: FetchContext): Promise<Found | undefined> {
    try {
      if (context.refresh !== true) {
        const found = await this.#look(key)
        if (found.entry !== undefined) return found
        const { taken, landed } = await this.#lock(key)
        if (landed.entry !== undefined) return landed
        if (taken) {
          const waited = await this.#wait(key)
          if (waited?.entry !== undefined) return waited
        }
      }
      const response = await context.handler()
      context.response = response
      const storable = isStorable(response) && entrySize(response) <= this.#maxBytes
      // One round trip: the entry lands and the lock goes together. The lock is deleted even
      // if it has expired and another machine took it: at worst one more machine runs the
      // handler, and no answer is ever wrong.
      await this.#link.run((_c, b) => {
        const tx = b.multi()
        if (storable) tx.set(this.#entryKey(key), encodeEntry(response), { PX: this.ttl * 1000 })
        return tx.del(this.#lockKey(key)).exec()
      })
      return storable ? { entry: { ...response, storedAt: this.#clock() }, remaining: this.ttl * 1000, locked: false } : undefined
    } catch {
      // Redis did not answer: the handler answers alone, and nothing is stored.
      context.response ??= await context.handler()
      context.unstored = true
      return undefined
    }
  }

  /**
   * Takes the fill lock of `key` and looks for its entry again, in one script. Another machine's
   * fill can land (its entry stored and its lock deleted, in one MULTI) between this machine's
   * look and its `SET NX`: the lock is then free again, and taking it alone would run the
   * handler a second time for an entry that is already there. Seen in test runs: ten concurrent
   * misses over two machines ran the handler twice. A script runs alone, so no fill lands
   * between its SET and its GET. (A script rather than a MULTI: node-redis reads a MULTI's
   * replies without the binary client's type mapping, and the entry would come back as a
   * string.) A lock taken for an entry that turned out to be there is given back at once.
   * `taken`: another machine holds the lock.
   */
  async #lock(key: string): Promise<{ taken: boolean; landed: Found }> {
    const lockKey = this.#lockKey(key)
    const reply = await this.#link.run((_c, b) =>
      b.eval(LOCK_AND_LOOK, { keys: [lockKey, this.#entryKey(key)], arguments: [String(this.#lockTtl)] }),
    )
    // The script's own reply: [1 if it took the lock else 0, the entry or null, its PTTL].
    const [took, value, pttl] = reply as unknown as [0 | 1, Buffer | null, number]
    const landed = this.#found(value, pttl, took === 0)
    if (landed.entry !== undefined && took === 1) await this.#link.run(c => c.del(lockKey))
    return { taken: took === 0, landed }
  }

  /** Waits for another machine's fill: until the entry lands, the lock goes, or `lockTtl` passes. */
  async #wait(key: string): Promise<Found | undefined> {
    const deadline = performance.now() + this.#lockTtl
    while (performance.now() < deadline) {
      await sleep(this.#pollInterval)
      const found = await this.#look(key)
      if (found.entry !== undefined || !found.locked) return found
    }
    return undefined
  }

  /** The entry of `key` in Redis with its time left, and whether its fill lock is held: one round trip. */
  async #look(key: string): Promise<Found> {
    // node-redis pipelines commands sent in one tick: the three go out in one write, in this
    // order, but another machine's commands may run between them. The lock is read first: a
    // fill that lands (its entry stored and its lock deleted in one MULTI) after the EXISTS is
    // seen by the GET. Read after the GET, a fill landing between them read as "no entry and no
    // lock", and the waiting machine ran the handler a second time (seen in a test run).
    const [locked, value, pttl] = await this.#link.run((_c, b) =>
      Promise.all([b.exists(this.#lockKey(key)), b.get(this.#entryKey(key)), b.pTTL(this.#entryKey(key))]),
    )
    return this.#found(value, pttl, locked === 1)
  }

  /** What a GET and a PTTL of an entry read: the entry with its age, if it is one. */
  #found(value: Buffer | null, pttl: number, locked: boolean): Found {
    const ttlMs = this.ttl * 1000
    const response = value === null ? undefined : decodeEntry(value)
    // PTTL is -2 when the entry expired between the GET and it; count it as just expiring.
    const remaining = Math.min(Math.max(pttl, 1), ttlMs)
    const entry = response === undefined ? undefined : { ...response, storedAt: this.#clock() - (ttlMs - remaining) }
    return { entry, remaining, locked }
  }

  #entryKey(key: string): string {
    return `${this.#prefix}cache:${key}`
  }

  #lockKey(key: string): string {
    return `${this.#prefix}lock:${key}`
  }
}
