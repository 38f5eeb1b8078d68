/** What a session store does, in memory or in Redis, and the session ids both hand out. */
import { randomBytes } from 'node:crypto'

/** What one visit did. */
export interface Visit {
  /** The session id: the one the client sent, or a new one. */
  sid: string
  /** Visits in this session, this one included. */
  visits: number
  /** Whether the session was created by this visit, so the cookie must be set. */
  created: boolean
}

/** Visit counters by session id, each session forgotten after an idle timeout. */
export interface SessionStore {
  /**
   * Counts a visit in session `sid` and restarts its idle timeout, or starts a new session if
   * `sid` is missing, unknown or expired. Rejects with `RedisUnavailableError` when the store
   * is in Redis and Redis does not answer.
   */
  visit(sid: string | undefined): Promise<Visit>
  /**
   * Visits so far in session `sid`, or undefined if there is none. It changes nothing: the
   * count and the idle timeout stay as they were.
   */
  peek(sid: string): Promise<number | undefined>
}

/**
 * A new session id: 128 random bits, base64url (22 characters). Not guessable, so one client
 * cannot count in another's session, and no client chooses its own (a session-fixation
 * attack needs that).
 */
export function newSessionId(): string {
  return randomBytes(16).toString('base64url')
}

/**
 * Whether `value` could be an id `newSessionId` made. A cookie that could not is no session
 * at all, and never reaches a store (nor becomes a Redis key of a client's choosing).
 */
export function isSessionId(value: string): boolean {
  return /^[A-Za-z0-9_-]{22}$/.test(value)
}
