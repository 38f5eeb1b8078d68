// The cache's figures: responses by `X-Cache-Status`, since start and over the last minute, and what the store holds. Plain numbers that add up across workers, like stats.ts.
import { SecondRing } from '../observe/stats.js'
import { CACHE_STATUSES, type CacheStatus } from './types.js'

/** Seconds the hit ratio is taken over. */
export const HIT_RATIO_SECONDS = 60

export type StatusCounts = Record<CacheStatus, number>

/** What the cache of one process (or of every worker, added up) holds and has answered. */
export interface CacheCounts {
  /** Responses on cached routes since start, by `X-Cache-Status`. */
  requests: StatusCounts
  /** The same over the last HIT_RATIO_SECONDS whole seconds. */
  lastMinute: StatusCounts
  /** Bytes stored, headers included, and the budget they stay within. */
  bytes: number
  maxBytes: number
  /** Responses stored, every variant counted. */
  entries: number
  /** Responses dropped to make room for new ones, since start. */
  evictions: number
}

const INDEX = new Map<CacheStatus, number>(CACHE_STATUSES.map((s, i) => [s, i]))

function zeros(): StatusCounts {
  return { HIT: 0, MISS: 0, EXPIRED: 0, STALE: 0, UPDATING: 0, REVALIDATED: 0, BYPASS: 0 }
}

/** Counts responses by status, in all and per second. */
export class CacheCounter {
  readonly total = zeros()
  readonly #ring = new SecondRing(HIT_RATIO_SECONDS, CACHE_STATUSES.length)

  record(status: CacheStatus, now = Date.now()): void {
    this.total[status]++
    this.#ring.add(Math.floor(now / 1000), INDEX.get(status) as number)
  }

  /** The last HIT_RATIO_SECONDS whole seconds, the one under way left out. */
  lastMinute(now = Date.now()): StatusCounts {
    const sums = this.#ring.sums(Math.floor(now / 1000) - 1)
    const out = zeros()
    CACHE_STATUSES.forEach((s, i) => (out[s] = sums[i] as number))
    return out
  }
}

/** The sum of several processes' counts; null when none has a cache. */
export function mergeCacheCounts(parts: readonly (CacheCounts | null)[]): CacheCounts | null {
  const present = parts.filter((p): p is CacheCounts => p !== null)
  if (present.length === 0) return null
  const out: CacheCounts = { requests: zeros(), lastMinute: zeros(), bytes: 0, maxBytes: 0, entries: 0, evictions: 0 }
  for (const p of present) {
    for (const s of CACHE_STATUSES) {
      out.requests[s] += p.requests[s]
      out.lastMinute[s] += p.lastMinute[s]
    }
    out.bytes += p.bytes
    out.maxBytes += p.maxBytes
    out.entries += p.entries
    out.evictions += p.evictions
  }
  return out
}

/**
 * The share of responses the cache answered from what it stored (HIT, STALE, UPDATING and
 * REVALIDATED, which sent a stored body after a 304), among those it looked up (BYPASS left out:
 * the cache never looked). null when it looked up none.
 */
export function hitRatio(counts: StatusCounts): number | null {
  const served = counts.HIT + counts.STALE + counts.UPDATING + counts.REVALIDATED
  const looked = served + counts.MISS + counts.EXPIRED
  return looked === 0 ? null : served / looked
}
