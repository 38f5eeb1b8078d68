// Every setting, once: the CLI builds its flags from this table, and a config file uses the same keys.
import { LOG_FORMATS } from '../observe/access-log.js'
import { CACHE_SETTINGS } from '../cache/settings.js'
import { POLICY_NAMES } from '../options.js'
import { TLS_VERSIONS } from '../server/certificates.js'

/** One setting, as a CLI flag and a config-file key of the same name. */
interface Setting {
  describe: string
  /** Shown in --help; `undefined` means off, unless `shown` says what happens instead. */
  default: string | number | boolean | string[] | undefined
  /** What --help shows as the default when there is no value but something happens all the same. */
  shown?: string
  boolean?: true
  array?: true
}

/**
 * Every setting, by the flags' long names: the CLI builds its flags from this table and a
 * config file may use these keys. Defaults follow nginx where it has a counterpart.
 */
export const SETTINGS = {
  port: { describe: 'Port to listen on; 0 picks a free one; off: no plain listener (with --https-port)', default: 8080 },
  host: { describe: 'Address to listen on (both listeners)', default: '0.0.0.0' },
  'https-port': { describe: 'Listen for HTTPS on this port too (TLS, then HTTP/2 or HTTP/1.1); 0 picks a free one', default: undefined },
  'tls-cert': {
    describe:
      'PEM certificate chain for HTTPS, paired with the --tls-key of the same rank; repeat the pair for more (SNI picks by name; the first is the default)',
    default: undefined,
    array: true,
  },
  'tls-key': { describe: 'PEM private key of the --tls-cert of the same rank', default: undefined, array: true },
  http2: {
    describe: 'Offer HTTP/2 on the HTTPS port by ALPN, HTTP/1.1 as the fallback (--no-http2: HTTP/1.1 only)',
    default: true,
    boolean: true,
  },
  'tls-min-version': { describe: `Oldest TLS version accepted: ${TLS_VERSIONS.join(' or ')}`, default: 'TLSv1.2' },
  'redirect-https': {
    describe: 'The plain port answers 308 to the same URL on HTTPS (but /.well-known/acme-challenge/)',
    default: false,
    boolean: true,
  },
  hsts: { describe: 'Send Strict-Transport-Security: max-age=T on HTTPS answers, e.g. 365d', default: undefined },
  'upstream-ca': { describe: 'PEM CA certificates that tls upstreams must chain to', default: undefined, shown: "Node's own roots" },
  upstream: {
    describe:
      'An upstream as an nginx server line, "host:port [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [slow_start=T] [backup] [down] [tls] [tls_servername=NAME] [resolve]", or "host service=NAME resolve" for SRV records; repeat for more',
    default: ['127.0.0.1:5000', '127.0.0.1:5001'],
    array: true,
  },
  policy: { describe: `How to choose an upstream: ${POLICY_NAMES.join(', ')}`, default: 'round-robin' },
  'hash-key': { describe: 'What the hash policy hashes: ip, path, header:NAME, cookie:NAME, query:NAME', default: 'ip' },
  'sticky-cookie': { describe: 'Pin each client to an upstream with a signed cookie of this name', default: undefined },
  'sticky-secret': {
    describe: 'HMAC key for the sticky cookie; share it between instances (it shows in ps: prefer --sticky-secret-file)',
    default: undefined,
    shown: 'a random one per start, with a warning',
  },
  'sticky-secret-file': { describe: 'File holding the HMAC key for the sticky cookie', default: undefined },
  'queue-size': { describe: 'Requests that may wait when every upstream is at max_conns', default: 1000 },
  'queue-timeout': { describe: 'Longest wait for a free upstream, then 503', default: '30s' },
  'reclaim-after': {
    describe: 'When open connections fall to a quarter of a peak of at least this many, collect garbage to give memory back; 0: never',
    default: 1000,
  },
  'max-fails': { describe: 'Failures within fail-timeout that mark an upstream down; 0: never (nginx max_fails)', default: 1 },
  'fail-timeout': { describe: 'Failure window, and how long a failed upstream is skipped (nginx fail_timeout)', default: '10s' },
  'connect-timeout': { describe: 'Wait for an upstream connection; then try the next (nginx proxy_connect_timeout)', default: '5s' },
  timeout: { describe: 'Wait for response headers, and for each read after them (nginx proxy_read_timeout)', default: '60s' },
  'retry-on-timeout': { describe: 'Try the next upstream after a response timeout too', default: false, boolean: true },
  retries: { describe: 'Most further tries after the first', default: undefined, shown: 'each upstream once' },
  'retry-timeout': { describe: 'Stop trying new upstreams this long after the request came; 0: no cap', default: 0 },
  'client-header-timeout': { describe: 'Time for a client to send the whole header block; then 408', default: '20s' },
  'client-body-timeout': { describe: 'Time between two reads of a request body (nginx client_body_timeout)', default: '60s' },
  'tunnel-timeout': {
    describe: 'Close a WebSocket tunnel that passed no byte either way for this long (HAProxy timeout tunnel); 0: never',
    default: '1h',
  },
  'keepalive-timeout': { describe: 'How long an idle client connection is kept (nginx keepalive_timeout)', default: '75s' },
  'upstream-idle-timeout': { describe: "How long an idle upstream connection is kept; below the backends' keep-alive", default: '4s' },
  'health-path': { describe: 'Path to check actively, e.g. /healthz; the other health-* flags apply once it is set', default: undefined },
  'health-interval': { describe: 'Time between two checks of an upstream', default: '2s' },
  'health-timeout': { describe: 'Time a check may take', default: '1s' },
  'healthy-threshold': { describe: 'Consecutive passes that bring an upstream up', default: 2 },
  'unhealthy-threshold': { describe: 'Consecutive failures that take an upstream down', default: 3 },
  'health-status': { describe: 'Statuses that pass a check, as a range', default: '200-399' },
  'admin-port': {
    describe: 'Port of the admin listener (dashboard, /status.json, /metrics, /events); 0 picks a free one',
    default: undefined,
  },
  'admin-host': { describe: 'Address of the admin listener; keep it private', default: '127.0.0.1' },
  'admin-allowed-host': {
    describe:
      'A Host name the admin listener answers besides localhost, 127.0.0.1, [::1] and its own address (others get 421): NAME for any port, NAME:PORT for one; repeat for more',
    default: undefined,
    array: true,
  },
  'admin-token-file': {
    describe:
      'File holding the Bearer token that state-changing admin calls need (or set SWITCHYARD_ADMIN_TOKEN); without one they get 403',
    default: undefined,
  },
  'state-file': {
    describe:
      'File where runtime changes (admin states, added and removed upstreams) are saved, to survive a restart (HAProxy server-state-file)',
    default: undefined,
  },
  'resolve-interval': {
    describe: 'Longest time between two DNS lookups of an upstream line with resolve; the TTL decides below it',
    default: '30s',
  },
  resolver: { describe: 'DNS server for resolve lines, IP[:port]', default: undefined, shown: 'the system resolver' },
  'access-log': { describe: 'Where access lines go: a file to append to, - for stdout, or off', default: '-' },
  'log-format': {
    describe: `Access-log format: ${LOG_FORMATS.join(', ')} (nginx combined plus upstream fields, or JSON lines)`,
    default: 'combined',
  },
  workers: { describe: 'Balancer processes sharing the port (node:cluster): a number, or auto for one per core', default: 1 },
  'drain-timeout': { describe: 'On SIGTERM/SIGINT, time in-flight requests get to finish', default: '30s' },
  quiet: { describe: 'No per-request log lines: the same as --access-log off', default: false, boolean: true },
  ...CACHE_SETTINGS,
} satisfies Record<string, Setting>

export type SettingKey = keyof typeof SETTINGS

/** The keys a config file may hold: the flags' long names. */
export const CONFIG_KEYS = Object.keys(SETTINGS) as SettingKey[]
