// The edge cache's settings: its CLI flags and config keys, their parsing, and its options.
import { ConfigError } from '../errors.js'
import { parseDuration } from '../config/parse.js'
import type { EdgeCacheOptions } from './types.js'

/**
 * The cache's flags, by long name, in the shape of `SETTINGS` in config.ts (a config-file key
 * each). Sizes as nginx writes them (`512k`, `64m`, `1g`) or with a `b` (`64mb`).
 */
export const CACHE_SETTINGS = {
  cache: { describe: 'Turn the edge cache on, with this memory budget (e.g. 256mb); off unless set', default: undefined },
  'cache-max-object': { describe: 'Larger responses stream through and are not stored', default: '8mb' },
  'cache-default-ttl': {
    describe:
      'Freshness for a 200 or 301 that has no max-age, s-maxage or Expires (nginx proxy_cache_valid); 0: such responses are not stored',
    default: '0',
  },
  'cache-lock-timeout': {
    describe:
      "How long a request waits for another's fetch of the same URL, then goes upstream itself without storing (nginx proxy_cache_lock_timeout)",
    default: '5s',
  },
  'cache-stale-if-error': {
    describe: 'How long past freshness a stored response may be served when every upstream fails, for a response without stale-if-error',
    default: '1h',
  },
} as const

export type CacheSettingKey = keyof typeof CACHE_SETTINGS

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, m: 1024 ** 2, mb: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3 }

/**
 * Parses a size: a number of bytes, or digits with a unit as nginx writes them (`k`, `m`, `g`,
 * powers of 1024) or with a `b` after it (`64mb`), in any case. Returns whole bytes.
 * @throws ConfigError naming `what` and the bad value.
 */
export function parseSize(value: unknown, what: string): number {
  const m =
    typeof value === 'number'
      ? [String(value), String(value), '']
      : typeof value === 'string'
        ? /^(\d+(?:\.\d+)?)\s*([kmg]?b?)$/i.exec(value.trim())
        : null
  const bytes = m === null ? NaN : Math.floor(Number(m[1]) * (UNITS[(m[2] as string).toLowerCase()] as number))
  if (!Number.isSafeInteger(bytes) || bytes < 0) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a size (use e.g. 512kb, 64mb, 1gb, or a number of bytes)`)
  }
  return bytes
}

/** The smallest budget that holds anything worth the name: one entry's bookkeeping and a little more. */
const MIN_BUDGET = 64 * 1024

/**
 * The cache's options from its settings (`pick` returns a flag, else the file's key, else the
 * default), or undefined when `--cache` is unset or `off`.
 * @throws ConfigError naming the bad value.
 */
export function resolveCacheOptions(pick: (key: CacheSettingKey) => unknown): EdgeCacheOptions | undefined {
  const budget = pick('cache')
  if (budget === undefined || budget === 'off' || budget === false) return undefined
  const maxBytes = parseSize(budget, 'cache')
  if (maxBytes < MIN_BUDGET)
    throw new ConfigError(`cache: ${JSON.stringify(budget)} is below the smallest budget, 64kb (use off to turn the cache off)`)
  const maxObject = parseSize(pick('cache-max-object'), 'cache-max-object')
  if (maxObject === 0) throw new ConfigError('cache-max-object: 0 would store nothing; leave --cache unset to turn the cache off')
  return {
    maxBytes,
    maxObject,
    defaultTtl: parseDuration(pick('cache-default-ttl'), 'cache-default-ttl'),
    lockTimeout: parseDuration(pick('cache-lock-timeout'), 'cache-lock-timeout'),
    staleIfError: parseDuration(pick('cache-stale-if-error'), 'cache-stale-if-error'),
  }
}
