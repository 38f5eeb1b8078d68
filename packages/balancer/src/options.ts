// What createBalancer takes: BalancerOptions, the types its fields are made of, and their defaults.
import type { EdgeCacheOptions } from './cache/types.js'
import type { AccessLog } from './observe/access-log.js'
import type { UpstreamTls } from './upstreams/tls.js'

/** The names of the balancing policies. */
export type PolicyName = 'round-robin' | 'least-requests' | 'random-two' | 'hash' | 'first'

export const POLICY_NAMES: readonly PolicyName[] = ['round-robin', 'least-requests', 'random-two', 'hash', 'first']

/** What the `hash` policy hashes (nginx `hash $key`, HAProxy `balance hdr/url_param`). */
export type HashKey = { kind: 'ip' } | { kind: 'path' } | { kind: 'header' | 'cookie' | 'query'; name: string }

/** One upstream as configured: where it is and how its passive health is judged. */
export interface UpstreamSpec {
  /** Host name or IP address (IPv6 without brackets). */
  host: string
  /** TCP port, 1–65535; 0 with `service`, whose SRV records give the ports. */
  port: number
  /**
   * Look `host` up in DNS again and again (nginx `resolve`): each address becomes an upstream of
   * its own, with these settings. Default false: the host is used as it is.
   */
  resolve?: boolean
  /** With `resolve`: take addresses and ports from the SRV records of this service (nginx `service=`). */
  service?: string
  /** For an upstream DNS found: the name of its line, `app.internal:5000`. Set by the balancer. */
  from?: string
  /**
   * Failures within `failTimeout` that mark the upstream down; 0 never marks it down.
   * Default: the pool's `maxFails` (1), as nginx `max_fails`.
   */
  maxFails?: number
  /**
   * How long failures are counted, and how long a failed upstream is skipped, in ms.
   * Default: the pool's `failTimeout` (10 000), as nginx `fail_timeout`.
   */
  failTimeout?: number
  /** Share of traffic relative to the others (nginx `weight`). Default 1. */
  weight?: number
  /** Used only when every primary upstream is unavailable (nginx `backup`). Default false. */
  backup?: boolean
  /** Marked down by the operator: never chosen (nginx `down`). Default false. */
  down?: boolean
  /** Most requests in flight at once; 0: no limit (nginx `max_conns`). Default 0. */
  maxConns?: number
  /**
   * After coming back up, the weight ramps linearly from 10% to 100% over this many ms
   * (HAProxy `slowstart`). Default 0: full weight at once.
   */
  slowStart?: number
  /**
   * Speak TLS to it, verifying its certificate (nginx `proxy_pass https://` with
   * `proxy_ssl_verify on`): the server line's `tls` and `tls_servername=NAME`. Default: plain HTTP.
   */
  tls?: UpstreamTls
}

/** Active health checks, the HAProxy / Envoy model. */
export interface HealthCheckOptions {
  /** Path requested with GET on each upstream. */
  path: string
  /** Time between two checks of an upstream, in ms. */
  interval: number
  /** Time a check may take, in ms. */
  timeout: number
  /** Consecutive passes that bring a down upstream up. */
  healthyThreshold: number
  /** Consecutive failures that take an up upstream down. */
  unhealthyThreshold: number
  /** Statuses that pass, inclusive. */
  status: readonly [number, number]
}

/** Sticky sessions by cookie. */
export interface StickyOptions {
  /** The cookie's name. */
  cookie: string
  /** The HMAC key. Instances that share it share stickiness. */
  secret: string | Buffer
}

/** Options of `createBalancer`. Durations are in ms. */
export interface BalancerOptions {
  /** The upstreams, in declared order. Required, at least one. */
  upstreams: UpstreamSpec[]
  /** Failures within `failTimeout` that mark an upstream down (nginx `max_fails`). Default 1; 0 never does. */
  maxFails?: number
  /** Failure window and down time (nginx `fail_timeout`). Default 10 000. */
  failTimeout?: number
  /** Wait for an upstream connection; then it is tried like a refused one. Default 5 000. */
  connectTimeout?: number
  /**
   * Wait for the response headers, and for each read after them while the client is ready for
   * more (nginx `proxy_read_timeout`). Past it: 504, or a closed connection once the head is sent.
   * Default 60 000.
   */
  timeout?: number
  /** Try the next upstream after a response timeout too. Default false: one timeout, one 504. */
  retryOnTimeout?: boolean
  /** Most further tries after the first. Default: each upstream once (nginx `proxy_next_upstream_tries 0`). */
  retries?: number
  /** No new try starts this long after the request came (nginx `proxy_next_upstream_timeout`). Default 0: no cap. */
  retryTimeout?: number
  /** Time for a client to send its whole header block; then 408. Default 20 000. */
  clientHeaderTimeout?: number
  /** Time between two reads of a request body (nginx `client_body_timeout`); then 408. Default 60 000. */
  clientBodyTimeout?: number
  /**
   * How long an open WebSocket tunnel may pass no byte either way before it is closed (HAProxy
   * `timeout tunnel`; nginx applies proxy_read_timeout). Default 3 600 000 (1 h); 0: never.
   */
  tunnelTimeout?: number
  /** How long an idle client connection is kept (nginx `keepalive_timeout`). Default 75 000. */
  keepAliveTimeout?: number
  /**
   * How long an idle upstream connection is kept for reuse. Default 4 000: shorter than Node's
   * default server `keepAliveTimeout` (5 s), so the balancer does not reuse a connection the
   * backend is closing.
   */
  upstreamIdleTimeout?: number
  /** The balancing policy. Default `round-robin`. */
  policy?: PolicyName
  /** What the `hash` policy hashes. Default: the client's IP address. */
  hashKey?: HashKey
  /** Most requests waiting for a slot when every candidate is at max_conns. Default 1000. */
  queueSize?: number
  /** Longest wait for a slot, then 503. Default 30 000. */
  queueTimeout?: number
  /** Sticky sessions by signed cookie. Default: off. */
  sticky?: StickyOptions | undefined
  /** Active health checks. Default: none. */
  health?: HealthCheckOptions | undefined
  /** Receives one line per health change and notice. Default: none. */
  log?: ((line: string) => void) | undefined
  /** Receives one entry per request. Default: none. */
  accessLog?: AccessLog | undefined
  /**
   * Once open client connections fall to a quarter of a peak of at least this many, run full
   * garbage collections to give the memory back (see Reclaimer). Default 1000; 0: never.
   */
  reclaimAfter?: number
  /**
   * The edge cache (cache/): answers from memory before an upstream is chosen. Default: off. A
   * reload with other cache options starts an empty cache; with the same, the cache is kept.
   */
  cache?: EdgeCacheOptions | undefined
  /**
   * The PEM certificates a TLS upstream's certificate must chain to (`--upstream-ca`). Default:
   * Node's own roots (Mozilla's, plus NODE_EXTRA_CA_CERTS).
   */
  upstreamCa?: Buffer | undefined
  /** `Strict-Transport-Security: max-age` of HTTPS answers, in ms (`--hsts`). Default: none. */
  hsts?: number | undefined
}

/** The defaults of the optional fields that have one, as the TSDoc above states them. */
export const DEFAULTS = {
  maxFails: 1,
  failTimeout: 10_000,
  connectTimeout: 5_000,
  timeout: 60_000,
  retryOnTimeout: false,
  retries: Number.POSITIVE_INFINITY,
  retryTimeout: 0,
  clientHeaderTimeout: 20_000,
  clientBodyTimeout: 60_000,
  tunnelTimeout: 3_600_000,
  keepAliveTimeout: 75_000,
  upstreamIdleTimeout: 4_000,
  policy: 'round-robin',
  queueSize: 1000,
  queueTimeout: 30_000,
  reclaimAfter: 1000,
} as const satisfies Partial<Record<keyof BalancerOptions, unknown>>
