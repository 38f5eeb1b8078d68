// Sticky sessions: a signed cookie that pins a client to its upstream.
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import type { StickyOptions } from '../options.js'
import { cookieValue } from '../util/cookies.js'

/**
 * Sticky sessions with a signed cookie naming the upstream (Caddy `lb_policy cookie`,
 * HAProxy `cookie ... insert`): `<base64url(upstream id)>.<base64url(HMAC-SHA256)>`. Nothing is
 * stored in the balancer, so several instances with one secret share stickiness. A cookie
 * that fails its HMAC is ignored, so a client cannot steer itself to an upstream of its
 * choice.
 */
export class Sticky {
  readonly cookie: string
  readonly #secret: string | Buffer

  constructor(options: StickyOptions) {
    this.cookie = options.cookie
    this.#secret = options.secret
  }

  /** A random secret, for when none is configured. */
  static randomSecret(): Buffer {
    return randomBytes(32)
  }

  #sign(id: string): Buffer {
    return createHmac('sha256', this.#secret).update(id).digest()
  }

  /** The upstream id a valid cookie on `req` names, or undefined (no cookie, or tampered). */
  idFrom(req: IncomingMessage): string | undefined {
    const value = cookieValue(req.headers.cookie, this.cookie)
    const dot = value === undefined ? -1 : value.indexOf('.')
    if (dot < 0) return undefined
    const id = Buffer.from((value as string).slice(0, dot), 'base64url').toString()
    const mac = Buffer.from((value as string).slice(dot + 1), 'base64url')
    const expected = this.#sign(id)
    return mac.length === expected.length && timingSafeEqual(mac, expected) ? id : undefined
  }

  /**
   * The Set-Cookie value pinning a client to upstream `id`: a session cookie (no Max-Age), for
   * the whole site, not readable by scripts, sent on top-level navigation; Secure over https.
   */
  setCookie(id: string, secure: boolean): string {
    const value = `${Buffer.from(id).toString('base64url')}.${this.#sign(id).toString('base64url')}`
    return `${this.cookie}=${value}; Path=/; HttpOnly; SameSite=Lax${secure ? '; Secure' : ''}`
  }
}
