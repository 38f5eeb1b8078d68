// Which Host the admin listener answers: its defence against DNS rebinding.
/*
 * Which `Host` the admin listener answers: its defence against DNS rebinding. A page on
 * evil.example can point its own name at 127.0.0.1 once the browser has loaded it; the browser
 * then takes the admin listener for evil.example's origin and lets the page read it. What the page
 * cannot change is the Host header, which still says evil.example. So the listener answers only a
 * Host that names it, as Vite's `server.allowedHosts`, webpack-dev-server's `allowedHosts` and
 * Django's `ALLOWED_HOSTS` do, and refuses the rest with 421 Misdirected Request (RFC 9110
 * §15.5.20: "not able to produce a response for this combination of scheme and authority").
 */
import { ConfigError } from '../errors.js'

/** A host as a Host header or `--admin-allowed-host` writes it: the name in lower case without a trailing dot, and the port if one was given. */
export interface HostName {
  name: string
  port: number | undefined
}

/** Where a request came in: the local end of its connection. */
export interface Arrival {
  address: string
  port: number
}

/**
 * RFC 9110 §7.2 `uri-host [ ":" port ]`, narrowed to what a browser sends: an IP-literal in
 * brackets, or dot-separated labels (an IPv4 address is one too) with an optional trailing dot.
 * No user info, no empty port: browsers never send them, and a Host with them names nothing here.
 */
const HOST = /^(\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?)(?::(\d{1,5}))?$/i

/** A DNS name is at most 253 bytes, with a 6-byte `:port` after it; anything longer names nothing. */
const MAX_HOST = 261

/** The browser's port when a URL has none: it then sends a Host without one. */
const DEFAULT_PORT = 80

/** The loopback names a browser on this machine uses for the listener. */
const LOOPBACK = ['localhost', '127.0.0.1', '[::1]']

/** Parses a Host header value; undefined when it is not a host with an optional port. */
export function parseHost(value: string): HostName | undefined {
  const m = value.length <= MAX_HOST ? HOST.exec(value) : null
  if (m === null) return undefined
  const port = m[2] === undefined ? undefined : Number(m[2])
  if (port !== undefined && (port < 1 || port > 65535)) return undefined
  // `localhost.` is `localhost` written as a fully qualified name: the same host.
  return { name: (m[1] as string).toLowerCase().replace(/\.$/, ''), port }
}

/**
 * Parses an `--admin-allowed-host` value: `NAME` (any port) or `NAME:PORT` (that port only).
 * @throws ConfigError naming the value.
 */
export function parseAllowedHost(value: unknown): HostName {
  const host = typeof value === 'string' ? parseHost(value.trim()) : undefined
  if (host === undefined) {
    throw new ConfigError(
      `admin-allowed-host: ${JSON.stringify(value)} is not a host name with an optional :port, like admin.example, admin.example:9090 or [fd00::1]`,
    )
  }
  return host
}

/** A listener address as a Host writes it: IPv6 in brackets, an IPv4-mapped IPv6 address as IPv4. */
function hostForm(address: string): string {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
  if (v4 !== null) return v4[1] as string
  return (address.includes(':') ? `[${address}]` : address).toLowerCase().replace(/\.$/, '')
}

/** `NAME[:PORT]`, as `--admin-allowed-host` takes it. */
export const shownHost = (h: HostName): string => (h.port === undefined ? h.name : `${h.name}:${h.port}`)

/**
 * The names one admin listener answers for:
 * - `localhost`, `127.0.0.1`, `[::1]`, the address it was told to bind (`--admin-host`) and the
 *   address the connection came in on, each with the listener's own port; without a port only when
 *   that port is 80, since a browser leaves the default port out. An address cannot be rebound:
 *   a page can only be served from it by whatever listens there.
 * - every `--admin-allowed-host`: `NAME` with any port or none, as Vite and Django match, since a
 *   port forward or a proxy in front may change the port the browser sees; `NAME:PORT` with that
 *   port only.
 */
export class AllowedHosts {
  readonly #own: string[]
  readonly #extra: HostName[]

  /**
   * @param bound the address the listener was told to bind, if any (`--admin-host`).
   * @param extra the `--admin-allowed-host` values.
   */
  constructor(bound: string | undefined, extra: readonly string[] = []) {
    this.#own = bound === undefined ? LOOPBACK : [...LOOPBACK, hostForm(bound)]
    this.#extra = extra.map(parseAllowedHost)
  }

  /** Whether a Host names the listener that `at` is the local end of. */
  allows(host: HostName, at: Arrival): boolean {
    const port = host.port ?? DEFAULT_PORT
    if (port === at.port && (this.#own.includes(host.name) || host.name === hostForm(at.address))) return true
    return this.#extra.some(x => x.name === host.name && (x.port === undefined || x.port === port))
  }

  /**
   * Why a request is refused, as the one line of its 421; undefined when its Host names the
   * listener. `rawHost` holds every Host header the request carried.
   */
  refusal(rawHost: readonly string[], httpVersion: string, at: Arrival): string | undefined {
    const how = 'the admin listener answers only its own names and those given with --admin-allowed-host'
    if (rawHost.length > 1) return `${rawHost.length} Host headers; ${how}`
    const value = rawHost[0]
    // HTTP/1.0 may leave Host out (RFC 9112 §3.2 requires it from 1.1 on). It names no other
    // site, and a browser, the only way to rebind, always sends one.
    if (value === undefined) return httpVersion === '1.0' ? undefined : `no Host header; ${how}`
    const host = parseHost(value)
    if (host === undefined) return `Host ${JSON.stringify(value.slice(0, 64))} is not a host name; ${how}`
    if (this.allows(host, at)) return undefined
    return `Host "${shownHost(host)}" does not name this admin listener; to allow it, add --admin-allowed-host ${shownHost(host)}`
  }
}
