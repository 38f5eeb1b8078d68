/** Redis URLs: checked before use, and shown with the password masked, wherever they are shown. */
import { ConfigError } from '../errors.js'

/** A Redis URL that passed `parseRedisUrl`. */
export interface RedisTarget {
  /** The URL as given, password included: only ever handed to the Redis client. */
  url: string
  /** The URL with its password as `***`: what log lines and error messages may show. */
  shown: string
  /** The password, decoded, so `redact` can mask it in any text; undefined without one. */
  password: string | undefined
}

/** What a Redis URL looks like, for error messages. */
const SHAPE = 'redis://[user:password@]host[:port][/db] or rediss://… for TLS'

/**
 * Masks the password of anything shaped like a URL with credentials (`//user:pass@`), even a
 * URL too broken to parse: a typo in the host must not print the password next to it.
 */
function maskUserinfo(text: string): string {
  return text.replace(/(\/\/[^/\s:@]*:)[^/\s]*@/g, '$1***@')
}

/** `text` with `secret` (when there is one) and any URL's password replaced by `***`. */
export function redact(text: string, secret?: string): string {
  const masked = maskUserinfo(text)
  return secret === undefined || secret === '' ? masked : masked.split(secret).join('***')
}

/**
 * Checks a Redis URL the way node-redis reads it (`redis:` or `rediss:`, a host, an optional
 * port and database number) and throws a `ConfigError` that names it, password masked. The
 * database number is checked here so a typo fails at start-up, not at the first command.
 */
export function parseRedisUrl(value: unknown, what: string): RedisTarget {
  const bad = (why: string): ConfigError =>
    new ConfigError(`${what}: ${JSON.stringify(typeof value === 'string' ? maskUserinfo(value) : value)} ${why} (${SHAPE})`)
  if (typeof value !== 'string') throw bad('is not a Redis URL')
  let url: URL
  try {
    url = new URL(value)
  } catch {
    throw bad('is not a Redis URL')
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw bad(`has scheme ${url.protocol} instead of redis: or rediss:`)
  if (url.hostname === '') throw bad('names no host')
  if (!/^(\/\d{0,5})?$/.test(url.pathname)) throw bad('has a path that is not a database number')
  if (url.search !== '' || url.hash !== '') throw bad('has a query or fragment, which node-redis would ignore')
  if (url.password === '') return { url: value, shown: value, password: undefined }
  const password = decodeURIComponent(url.password)
  url.password = '***'
  return { url: value, shown: url.href, password }
}
