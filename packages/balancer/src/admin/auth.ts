// The admin listener's one gate for state-changing calls: a Bearer token, compared in constant time, failures logged once a minute.
/**
 * The admin listener's one gate for calls that change state: a Bearer token (RFC 6750), read
 * from a file or the environment, compared in constant time, with failed attempts logged once per
 * client address per minute. Reads stay open, as HAProxy's stats page and Envoy's admin port
 * are: the listener is on 127.0.0.1 by default and refuses rebinding Hosts (allowed-hosts.ts).
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import { readFileSync } from 'node:fs'
import type { IncomingMessage } from 'node:http'
import { ConfigError } from '../errors.js'

/** The environment variable a token may come from, when no `--admin-token-file` is given. */
export const TOKEN_ENV = 'SWITCHYARD_ADMIN_TOKEN'

/**
 * The shortest token taken. A token is a password tried over the network with no lockout: 16
 * characters from `openssl rand -hex 32` or a password manager are far out of reach of guessing.
 */
export const MIN_TOKEN_LENGTH = 16

/** How long one address's failed attempts make one log line (HAProxy logs no more than this either). */
export const FAILURE_LOG_MS = 60_000

/** Addresses remembered for the failure log at most: an address older than a minute is dropped first. */
const MAX_REMEMBERED = 10_000

/** How to set a token, for the 403 and for errors. */
const HOW = `start the balancer with --admin-token-file FILE or the ${TOKEN_ENV} environment variable`

/**
 * Reads the token: from `file` when given, else from `env[SWITCHYARD_ADMIN_TOKEN]`; surrounding
 * whitespace (a file's last newline) is not part of it. Undefined when neither is set: then every
 * state-changing call is refused with 403.
 * @throws ConfigError when the file cannot be read, or the token is empty, too short or not visible ASCII.
 *   The message never holds the token.
 */
export function loadAdminToken(file: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let token: string
  let from: string
  if (file !== undefined) {
    from = `admin-token-file ${file}`
    try {
      token = readFileSync(file, 'utf8').trim()
    } catch (err) {
      throw new ConfigError(`${from}: cannot be read (${(err as NodeJS.ErrnoException).code})`)
    }
  } else {
    const value = env[TOKEN_ENV]
    if (value === undefined) return undefined
    from = TOKEN_ENV
    token = value.trim()
  }
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new ConfigError(
      `${from}: the token has ${token.length} characters; use at least ${MIN_TOKEN_LENGTH}, e.g. from \`openssl rand -hex 32\``,
    )
  }
  // A header value carries visible ASCII; anything else could never be sent back.
  if (!/^[\x21-\x7e]+$/.test(token)) throw new ConfigError(`${from}: the token must be visible ASCII characters with no spaces`)
  return token
}

/** What a state-changing request shows the gate: its Authorization header and where it came from. */
export interface Credentials {
  authorization: string | undefined
  /** The client's address, for the failure log. */
  address: string
  /** What was asked, e.g. `POST /upstreams/127.0.0.1%3A5000/state`, for the failure log. */
  what: string
}

/**
 * What the gate needs of a request; `what` names it in the failure log (cut to 200 characters,
 * so that a long path cannot flood it).
 */
export function credentialsOf(req: IncomingMessage, what: string): Credentials {
  return { authorization: req.headers.authorization, address: String(req.socket.remoteAddress), what: what.slice(0, 200) }
}

/** Why a request is refused: the status, its one-line body, and the headers to send with it. */
export interface Refusal {
  status: 401 | 403
  message: string
  headers: Record<string, string>
}

/** `Bearer <token68>`; the scheme is case-insensitive (RFC 9110 §11.1). */
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest()

/**
 * The gate. `check` returns undefined for a request with the right token, or the refusal to send:
 * 403 when no token is configured (the call cannot succeed, and the body says how to set one),
 * 401 with `WWW-Authenticate: Bearer` for a missing or wrong token.
 *
 * The token is compared as SHA-256 digests with `timingSafeEqual`: both are 32 bytes whatever the
 * lengths, so neither the time nor an early length check tells how much of a guess was right.
 */
export class AdminAuth {
  readonly #digest: Buffer | undefined
  readonly #log: (line: string) => void
  readonly #now: () => number
  /** Per address: when its last failure was logged, and the failures since that were not. */
  readonly #failures = new Map<string, { loggedAt: number; quiet: number }>()

  /**
   * @param token the configured token, or undefined for none (see `loadAdminToken`).
   * @param log receives one line per address per minute of failed attempts; never the token.
   * @param now the clock, in ms.
   */
  constructor(token: string | undefined, log: (line: string) => void = () => {}, now: () => number = Date.now) {
    this.#digest = token === undefined ? undefined : sha256(token)
    this.#log = log
    this.#now = now
  }

  /** Whether a token is configured: without one, every state-changing call is refused. */
  get configured(): boolean {
    return this.#digest !== undefined
  }

  /** Undefined when `c` carries the token; else the refusal, and the attempt is counted for the log. */
  check(c: Credentials): Refusal | undefined {
    if (this.#digest === undefined) {
      return { status: 403, message: `403 Forbidden: no admin token is set, so nothing may be changed; ${HOW}`, headers: {} }
    }
    const m = c.authorization === undefined ? null : BEARER.exec(c.authorization)
    if (m !== null && timingSafeEqual(sha256(m[1] as string), this.#digest)) return undefined
    const why =
      c.authorization === undefined
        ? 'no Authorization header'
        : m === null
          ? 'an Authorization header that is not "Bearer <token>"'
          : 'a wrong token'
    this.#failed(c, why)
    return {
      status: 401,
      message: `401 Unauthorized: ${why}; send "Authorization: Bearer <token>" with the admin token`,
      headers: { 'www-authenticate': 'Bearer realm="switchyard-admin"' },
    }
  }

  /** Logs a failure unless this address had one logged within the minute; the quiet ones are counted into the next line. */
  #failed(c: Credentials, why: string): void {
    const now = this.#now()
    const seen = this.#failures.get(c.address)
    if (seen !== undefined && now - seen.loggedAt < FAILURE_LOG_MS) {
      seen.quiet++
      return
    }
    const more = seen === undefined || seen.quiet === 0 ? '' : ` (and ${seen.quiet} more failed attempt(s) from it since the last line)`
    this.#log(`admin: refused ${c.what} from ${c.address}: ${why}${more}; further failures from this address are logged once a minute`)
    this.#failures.delete(c.address)
    this.#failures.set(c.address, { loggedAt: now, quiet: 0 })
    this.#forget(now)
  }

  /**
   * Bounds the memory a flood of addresses can take: entries past their minute are dropped (the
   * map keeps insertion order, so the oldest come first), then the oldest if there are still too many.
   */
  #forget(now: number): void {
    for (const [address, seen] of this.#failures) {
      if (now - seen.loggedAt < FAILURE_LOG_MS && this.#failures.size <= MAX_REMEMBERED) break
      this.#failures.delete(address)
    }
  }
}
