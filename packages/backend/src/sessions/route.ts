/** `GET /session`: the cookie, the answer, and the tag that stands for the session id. */
import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { liveJson, text, type BufferedResponse } from '../response.js'
import { isSessionId, type SessionStore } from './store.js'

/** The cookie that carries the session id. The balancer's sticky cookie has a name of its own. */
export const SESSION_COOKIE = 'sid'

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
 * `GET /session`: counts a visit and answers `{"id","visits","session"}` as JSON (`session`
 * is the id's tag, not the id), with `Set-Cookie: sid=...` when the session is new. A cookie
 * that is not an id the store could have made starts a new session, like an unknown one.
 * `HEAD /session` only looks: it counts nothing and creates nothing (so probes do not fill
 * the store); without a known session it answers `visits: 0, session: null` and sets no
 * cookie. The response is per client and never cached: the route bypasses the response
 * cache, and `Cache-Control: no-store` plus `Set-Cookie` keep any other cache from storing
 * it. A store in Redis that does not answer makes it a 503.
 */
export async function sessionResponse(req: IncomingMessage, store: SessionStore, id: string): Promise<BufferedResponse> {
  const cookie = parseCookies(req.headers.cookie).get(SESSION_COOKIE)
  const sid = cookie !== undefined && isSessionId(cookie) ? cookie : undefined
  try {
    if (req.method === 'HEAD') {
      const visits = sid === undefined ? undefined : await store.peek(sid)
      return liveJson(
        sid === undefined || visits === undefined ? { id, visits: 0, session: null } : { id, visits, session: sessionTag(sid) },
      )
    }
    const visit = await store.visit(sid)
    const body = { id, visits: visit.visits, session: sessionTag(visit.sid) }
    if (!visit.created) return liveJson(body)
    // No Max-Age: a browser session cookie; the server forgets the session after `ttl` idle anyway.
    return liveJson(body, 200, { 'set-cookie': `${SESSION_COOKIE}=${visit.sid}; Path=/; HttpOnly; SameSite=Lax` })
  } catch {
    // The stores reject only with RedisUnavailableError.
    return text(503, 'Service Unavailable: the session store (Redis) is not answering; try again shortly', {
      'cache-control': 'no-store',
      'retry-after': '1',
    })
  }
}
