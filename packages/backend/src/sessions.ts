import { createHash, randomBytes } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { LRUCache } from 'lru-cache'
import { parseWholeNumber } from './config.js'
import type { BufferedResponse } from './response.js'

/** The cookie that carries the session id. The balancer's sticky cookie has a name of its own. */
export const SESSION_COOKIE = 'sid'

/** Options of `SessionStore`. */
export interface SessionStoreOptions {
  /**
   * Most sessions kept; past it the least recently visited one is dropped, so a stream of
   * cookieless clients cannot grow the store without bound. Default 10,000.
   */
  max?: number
  /**
   * Seconds a session lives after its last visit (an idle timeout, like a PHP or Express
   * session's). Default 1800, 30 minutes.
   */
  ttl?: number
  /**
   * Milliseconds on a monotonic clock, for the idle timeout.
   * Default `performance.now()`. Tests pass their own to move time without waiting.
   */
  clock?: () => number
}

/** What one visit did. */
export interface Visit {
  /** The session id: the one the client sent, or a new one. */
  sid: string
  /** Visits in this session, this one included. */
  visits: number
  /** Whether the session was created by this visit, so the cookie must be set. */
  created: boolean
}

/** What `GET /session` answers, as JSON. */
export interface SessionBody {
  /** The backend's id: which store counted. */
  id: string
  /** Visits counted in this session; 0 for a HEAD without a session. */
  visits: number
  /**
   * A short tag of the session, `sessionTag(sid)`, never the id itself; null for a HEAD without
   * a session. The body is readable by any script on the page, the HttpOnly cookie is not:
   * echoing the id here would undo HttpOnly (issue 11). The tag still lets a person see whether
   * two answers came from one session.
   */
  session: string | null
}

/** Hex digits of the tag: 48 bits, plenty to tell a person's few sessions apart. */
const TAG_HEX_DIGITS = 12

/**
 * The first 12 hex digits of the SHA-256 of a session id. SHA-256 does not run backwards, and
 * the id has 128 random bits, so the tag gives nobody the id; sent as a cookie it is just an
 * unknown id, which starts a fresh session.
 */
export function sessionTag(sid: string): string {
  return createHash('sha256').update(sid).digest('hex').slice(0, TAG_HEX_DIGITS)
}

/**
 * lru-cache preallocates arrays of `max` slots, so an absurd bound would cost memory up front.
 * A million sessions of a few dozen bytes each is far more than a demo backend needs.
 */
const MAX_SESSIONS = 1_000_000
/** A year, like the response cache's TTL bound. */
const MAX_TTL_SECONDS = 31_536_000

/**
 * Parses a `Cookie` request header into names and values (RFC 6265 §4.2.1: `name=value`
 * pairs separated by `;`). Node has no parser of its own, and this one is small enough to
 * get right: the name ends at the first `=` (a value may hold more `=`, as base64 does),
 * whitespace around names and values is dropped, one pair of surrounding double quotes
 * is removed, and a pair without `=` or without a name is skipped. When a name repeats,
 * the first wins: browsers send the cookie with the most specific path first (same as
 * the `cookie` package). Values are not percent-decoded; the session id never needs it.
 */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>()
  for (const pair of (header ?? '').split(';')) {
    const eq = pair.indexOf('=')
    if (eq === -1) continue
    const name = pair.slice(0, eq).trim()
    let value = pair.slice(eq + 1).trim()
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1)
    if (name !== '' && !cookies.has(name)) cookies.set(name, value)
  }
  return cookies
}

/**
 * Visit counters by session id, in memory, bounded by count and by idle time. Each backend
 * holds its own: a session id one backend issued means nothing to another. That is the
 * point of the `/session` demo — behind round-robin the count starts over at every switch
 * of backend, and sticky sessions (or a store the backends share, like Redis) fix it.
 */
export class SessionStore {
  /** Values are boxes so a visit counts in place; `get` alone refreshes the idle timeout. */
  readonly #lru: LRUCache<string, { visits: number }>

  constructor(options: SessionStoreOptions = {}) {
    const max = parseWholeNumber(options.max ?? 10_000, 'sessions max', 1, MAX_SESSIONS)
    const ttl = parseWholeNumber(options.ttl ?? 1800, 'sessions ttl', 1, MAX_TTL_SECONDS)
    const clock = options.clock ?? (() => performance.now())
    this.#lru = new LRUCache({
      max,
      ttl: ttl * 1000,
      // The timeout counts from the last visit, not from the first.
      updateAgeOnGet: true,
      // lru-cache reuses a clock reading for `ttlResolution` ms; read it every time so an
      // injected clock takes effect at once (as in the response cache).
      ttlResolution: 0,
      perf: { now: clock },
    })
  }

  /** Sessions held (expired ones may linger until looked up or pushed out). */
  get size(): number {
    return this.#lru.size
  }

  /** Counts a visit in session `sid`, or starts a new session if `sid` is missing, unknown or expired. */
  visit(sid: string | undefined): Visit {
    const session = sid === undefined ? undefined : this.#lru.get(sid)
    if (sid !== undefined && session !== undefined) {
      session.visits += 1
      return { sid, visits: session.visits, created: false }
    }
    // 128 random bits: not guessable, so one client cannot count in another's session.
    const fresh = randomBytes(16).toString('base64url')
    this.#lru.set(fresh, { visits: 1 })
    return { sid: fresh, visits: 1, created: true }
  }

  /**
   * Visits so far in session `sid`, or undefined if there is none. It changes nothing: the
   * count, the idle timeout and the eviction order stay as they were.
   */
  peek(sid: string): number | undefined {
    return this.#lru.peek(sid)?.visits
  }
}

/** A JSON response no cache may keep, with `headers` added. */
function sessionJson(body: SessionBody, headers: Record<string, string> = {}): BufferedResponse {
  return {
    status: 200,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: Buffer.from(JSON.stringify(body)),
  }
}

/**
 * `GET /session`: counts a visit and answers `{"id","visits","session"}` as JSON (`session`
 * is the id's tag, not the id), with `Set-Cookie: sid=...` when the session is new. `HEAD /session` only looks: it counts
 * nothing and creates nothing (so probes do not fill the store); without a known session
 * it answers `visits: 0, session: null` and sets no cookie. The response is per client and
 * never cached: the route bypasses the response cache, and `Cache-Control: no-store` plus
 * `Set-Cookie` keep any other cache from storing it.
 */
export function sessionResponse(req: IncomingMessage, store: SessionStore, id: string): BufferedResponse {
  const sid = parseCookies(req.headers.cookie).get(SESSION_COOKIE)
  if (req.method === 'HEAD') {
    const visits = sid === undefined ? undefined : store.peek(sid)
    return sessionJson(
      sid === undefined || visits === undefined ? { id, visits: 0, session: null } : { id, visits, session: sessionTag(sid) },
    )
  }
  const visit = store.visit(sid)
  const body = { id, visits: visit.visits, session: sessionTag(visit.sid) }
  if (!visit.created) return sessionJson(body)
  // No Max-Age: a browser session cookie; the server forgets the session after `ttl` idle anyway.
  return sessionJson(body, { 'set-cookie': `${SESSION_COOKIE}=${visit.sid}; Path=/; HttpOnly; SameSite=Lax` })
}
