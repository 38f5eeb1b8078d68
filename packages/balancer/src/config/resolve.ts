import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { LOG_FORMATS, type LogFormat } from '../observe/access-log.js'
import { parseAllowedHost, shownHost } from '../admin/allowed-hosts.js'
import { ConfigError } from '../errors.js'
import type { BalancerOptions } from '../balancer.js'
import { parseHashKey } from '../select/hash.js'
import { POLICY_NAMES, type PolicyName } from '../select/policies.js'
import { Sticky } from '../select/sticky.js'
import type { UpstreamSpec } from '../upstreams/upstream.js'
import { parseUpstream } from './parse.js'
import { parseBoolean, parseDuration, parseInteger } from './parse.js'

/** One setting, as a CLI flag and a config-file key of the same name. */
interface Setting {
  describe: string
  /** Shown in --help; `undefined` means off. */
  default: string | number | boolean | string[] | undefined
  boolean?: true
  array?: true
}

/**
 * Every setting, by the flags' long names: the CLI builds its flags from this table and a
 * config file may use these keys. Defaults follow nginx where it has a counterpart.
 */
export const SETTINGS = {
  port: { describe: 'Port to listen on; 0 picks a free one', default: 8080 },
  host: { describe: 'Address to listen on', default: '0.0.0.0' },
  upstream: {
    describe: 'An upstream as an nginx server line, "host:port [weight=N] [max_fails=N] [fail_timeout=T] [max_conns=N] [slow_start=T] [backup] [down]"; repeat for more',
    default: ['127.0.0.1:5000', '127.0.0.1:5001'],
    array: true,
  },
  policy: { describe: `How to choose an upstream: ${POLICY_NAMES.join(', ')}`, default: 'round-robin' },
  'hash-key': { describe: 'What the hash policy hashes: ip, path, header:NAME, cookie:NAME, query:NAME', default: 'ip' },
  'sticky-cookie': { describe: 'Pin each client to an upstream with a signed cookie of this name', default: undefined },
  'sticky-secret': { describe: 'HMAC key for the sticky cookie; share it between instances', default: undefined },
  'sticky-secret-file': { describe: 'File holding the HMAC key for the sticky cookie', default: undefined },
  'queue-size': { describe: 'Requests that may wait when every upstream is at max_conns', default: 1000 },
  'queue-timeout': { describe: 'Longest wait for a free upstream, then 503', default: '30s' },
  'reclaim-after': { describe: 'When open connections fall to a quarter of a peak of at least this many, collect garbage to give memory back; 0: never', default: 1000 },
  'max-fails': { describe: 'Failures within fail-timeout that mark an upstream down; 0: never (nginx max_fails)', default: 1 },
  'fail-timeout': { describe: 'Failure window, and how long a failed upstream is skipped (nginx fail_timeout)', default: '10s' },
  'connect-timeout': { describe: 'Wait for an upstream connection; then try the next (nginx proxy_connect_timeout)', default: '5s' },
  timeout: { describe: 'Wait for response headers, and for each read after them (nginx proxy_read_timeout)', default: '60s' },
  'retry-on-timeout': { describe: 'Try the next upstream after a response timeout too', default: false, boolean: true },
  retries: { describe: 'Most further tries after the first; default: each upstream once', default: undefined },
  'retry-timeout': { describe: 'Stop trying new upstreams this long after the request came; 0: no cap', default: 0 },
  'client-header-timeout': { describe: 'Time for a client to send the whole header block; then 408', default: '20s' },
  'client-body-timeout': { describe: 'Time between two reads of a request body (nginx client_body_timeout)', default: '60s' },
  'tunnel-timeout': { describe: 'Close a WebSocket tunnel that passed no byte either way for this long (HAProxy timeout tunnel); 0: never', default: '1h' },
  'keepalive-timeout': { describe: 'How long an idle client connection is kept (nginx keepalive_timeout)', default: '75s' },
  'upstream-idle-timeout': { describe: "How long an idle upstream connection is kept; below the backends' keep-alive", default: '4s' },
  'health-path': { describe: 'Path to check actively, e.g. /healthz; off unless set', default: undefined },
  'health-interval': { describe: 'Time between two checks of an upstream', default: '2s' },
  'health-timeout': { describe: 'Time a check may take', default: '1s' },
  'healthy-threshold': { describe: 'Consecutive passes that bring an upstream up', default: 2 },
  'unhealthy-threshold': { describe: 'Consecutive failures that take an upstream down', default: 3 },
  'health-status': { describe: 'Statuses that pass a check, as a range', default: '200-399' },
  'admin-port': { describe: 'Port of the admin listener (dashboard, /status.json, /metrics, /events); 0 picks a free one', default: undefined },
  'admin-host': { describe: 'Address of the admin listener; keep it private', default: '127.0.0.1' },
  'admin-allowed-host': {
    describe: 'A Host name the admin listener answers besides localhost, 127.0.0.1, [::1] and its own address (others get 421): NAME for any port, NAME:PORT for one; repeat for more',
    default: undefined,
    array: true,
  },
  'access-log': { describe: 'Where access lines go: a file to append to, - for stdout, or off', default: '-' },
  'log-format': { describe: `Access-log format: ${LOG_FORMATS.join(', ')} (nginx combined plus upstream fields, or JSON lines)`, default: 'combined' },
  workers: { describe: 'Balancer processes sharing the port (node:cluster): a number, or auto for one per core', default: 1 },
  'drain-timeout': { describe: 'On SIGTERM/SIGINT, time in-flight requests get to finish', default: '30s' },
  quiet: { describe: 'No per-request log lines: the same as --access-log off', default: false, boolean: true },
} satisfies Record<string, Setting>

export type SettingKey = keyof typeof SETTINGS

/** The keys a config file may hold: the flags' long names. */
export const CONFIG_KEYS = Object.keys(SETTINGS) as SettingKey[]

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

/** The whole configuration: the listener, the process, and the balancer's options. */
export interface ResolvedConfig
  extends Required<Omit<BalancerOptions, 'log' | 'accessLog' | 'health' | 'retries' | 'sticky'>>,
    Pick<BalancerOptions, 'health' | 'retries' | 'sticky'> {
  port: number
  host: string
  /** On SIGTERM / SIGINT, time in-flight requests get to finish, in ms. */
  drainTimeout: number
  /** No per-request log lines. */
  quiet: boolean
  /** Where access lines go: a file, `-` for stdout; undefined when off (`--access-log off` or `--quiet`). */
  accessLogTo: string | undefined
  logFormat: LogFormat
  /** Balancer processes (node:cluster); 1: no cluster. */
  workers: number
  /** The admin listener's port; undefined when it is off. */
  adminPort: number | undefined
  adminHost: string
  /** Host names the admin listener answers besides its own: `name` or `name:port`, lower case. */
  adminAllowedHosts: string[]
  /** Whether the sticky secret was made up at start, because none was configured. */
  stickySecretGenerated: boolean
}

/** Reads a JSON config file whose keys are the flags' long names. */
export function readConfigFile(path: string): Record<string, unknown> {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new ConfigError(`config ${path}: cannot be read (${(err as NodeJS.ErrnoException).code})`)
  }
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`config ${path}: not valid JSON (${(err as Error).message})`)
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data)) {
    throw new ConfigError(`config ${path}: must hold a JSON object, like {"port": 8080}`)
  }
  for (const key of Object.keys(data)) {
    if (!(CONFIG_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(`config ${path}: unknown key ${JSON.stringify(key)} (allowed: ${CONFIG_KEYS.join(', ')})`)
    }
  }
  return data as Record<string, unknown>
}

/** A status range such as `200-399`, or one status such as `200`. */
function parseStatusRange(value: unknown, what: string): [number, number] {
  const m = typeof value === 'string' ? /^([1-5]\d\d)(?:-([1-5]\d\d))?$/.exec(value.trim()) : null
  const low = Number(m?.[1])
  const high = m?.[2] === undefined ? low : Number(m[2])
  if (!(low <= high)) throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a status range like 200-399`)
  return [low, high]
}

function parseUpstreams(value: unknown): UpstreamSpec[] {
  const list = Array.isArray(value) ? value : [value]
  if (list.length === 0) throw new ConfigError('upstream: at least one is needed, like 127.0.0.1:5000')
  const upstreams = list.map(parseUpstream)
  const seen = new Set<string>()
  for (const u of upstreams) {
    const id = `${u.host}:${u.port}`
    if (seen.has(id)) throw new ConfigError(`upstream: ${id} is listed twice`)
    seen.add(id)
  }
  return upstreams
}

/**
 * Merges the settings: flags override the file, the file overrides the defaults.
 * Keys are the flags' long names; a flag left unset is `undefined`.
 */
export function resolveConfig(flags: Partial<Record<SettingKey, unknown>>, file: Record<string, unknown> = {}): ResolvedConfig {
  const pick = (key: SettingKey): unknown => flags[key] ?? file[key] ?? SETTINGS[key].default
  const duration = (key: SettingKey): number => parseDuration(pick(key), key)
  const count = (key: SettingKey, min = 0): number => parseInteger(pick(key), key, min, 1_000_000)
  const host = pick('host')
  if (typeof host !== 'string' || host === '') {
    throw new ConfigError(`host: ${JSON.stringify(host)} is not an address to listen on`)
  }
  const healthPath = pick('health-path')
  if (healthPath !== undefined && (typeof healthPath !== 'string' || !healthPath.startsWith('/'))) {
    throw new ConfigError(`health-path: ${JSON.stringify(healthPath)} is not a path starting with /`)
  }
  const health =
    healthPath === undefined
      ? undefined
      : {
          path: healthPath,
          interval: duration('health-interval'),
          timeout: duration('health-timeout'),
          healthyThreshold: count('healthy-threshold', 1),
          unhealthyThreshold: count('unhealthy-threshold', 1),
          status: parseStatusRange(pick('health-status'), 'health-status'),
        }
  const retries = pick('retries')
  const policy = pick('policy')
  if (!POLICY_NAMES.includes(policy as PolicyName)) {
    throw new ConfigError(`policy: ${JSON.stringify(policy)} is not one of ${POLICY_NAMES.join(', ')}`)
  }
  const sticky = resolveSticky(pick('sticky-cookie'), pick('sticky-secret'), pick('sticky-secret-file'))
  const quiet = parseBoolean(pick('quiet'), 'quiet')
  const accessLog = pick('access-log')
  if (typeof accessLog !== 'string' || accessLog === '') {
    throw new ConfigError(`access-log: ${JSON.stringify(accessLog)} is not a file, - or off`)
  }
  const logFormat = pick('log-format')
  if (!LOG_FORMATS.includes(logFormat as LogFormat)) {
    throw new ConfigError(`log-format: ${JSON.stringify(logFormat)} is not one of ${LOG_FORMATS.join(', ')}`)
  }
  const adminHost = pick('admin-host')
  if (typeof adminHost !== 'string' || adminHost === '') {
    throw new ConfigError(`admin-host: ${JSON.stringify(adminHost)} is not an address to listen on`)
  }
  const adminPort = pick('admin-port')
  const workers = pick('workers')
  return {
    port: parseInteger(pick('port'), 'port', 0, 65535),
    host,
    drainTimeout: duration('drain-timeout'),
    quiet,
    accessLogTo: quiet || accessLog === 'off' ? undefined : accessLog,
    logFormat: logFormat as LogFormat,
    adminPort: adminPort === undefined ? undefined : parseInteger(adminPort, 'admin-port', 0, 65535),
    adminHost,
    adminAllowedHosts: parseAllowedHosts(pick('admin-allowed-host')),
    workers: parseWorkers(workers),
    upstreams: parseUpstreams(pick('upstream')),
    maxFails: count('max-fails'),
    failTimeout: duration('fail-timeout'),
    connectTimeout: duration('connect-timeout'),
    timeout: duration('timeout'),
    retryOnTimeout: parseBoolean(pick('retry-on-timeout'), 'retry-on-timeout'),
    retries: retries === undefined ? undefined : count('retries'),
    retryTimeout: duration('retry-timeout'),
    clientHeaderTimeout: duration('client-header-timeout'),
    clientBodyTimeout: duration('client-body-timeout'),
    tunnelTimeout: duration('tunnel-timeout'),
    keepAliveTimeout: duration('keepalive-timeout'),
    upstreamIdleTimeout: duration('upstream-idle-timeout'),
    health,
    policy: policy as PolicyName,
    hashKey: parseHashKey(pick('hash-key')),
    queueSize: count('queue-size'),
    queueTimeout: duration('queue-timeout'),
    reclaimAfter: count('reclaim-after'),
    sticky: sticky?.options,
    stickySecretGenerated: sticky?.generated ?? false,
  }
}

/** `--admin-allowed-host`: one or more names, each with an optional port; none by default. */
function parseAllowedHosts(value: unknown): string[] {
  const list = value === undefined ? [] : Array.isArray(value) ? value : [value]
  return list.map(v => shownHost(parseAllowedHost(v)))
}

/** `--workers`: a count from 1 to 64, or `auto` for one per core. */
function parseWorkers(value: unknown): number {
  if (value === 'auto') return availableParallelism()
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) {
    throw new ConfigError(`workers: ${JSON.stringify(value)} is not a whole number from 1 to 64, or auto`)
  }
  return n
}

/** The sticky-cookie settings: a cookie name, and a secret given, read from a file, or made up. */
function resolveSticky(cookie: unknown, secret: unknown, file: unknown) {
  if (cookie === undefined) return undefined
  if (typeof cookie !== 'string' || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(cookie)) {
    throw new ConfigError(`sticky-cookie: ${JSON.stringify(cookie)} is not a cookie name`)
  }
  if (typeof secret === 'string' && secret !== '') return { options: { cookie, secret }, generated: false }
  if (secret !== undefined) throw new ConfigError('sticky-secret: must be a non-empty string')
  if (file === undefined) return { options: { cookie, secret: Sticky.randomSecret() }, generated: true }
  let text: string
  try {
    text = readFileSync(String(file), 'utf8').trim()
  } catch (err) {
    throw new ConfigError(`sticky-secret-file ${String(file)}: cannot be read (${(err as NodeJS.ErrnoException).code})`)
  }
  if (text === '') throw new ConfigError(`sticky-secret-file ${String(file)}: is empty`)
  return { options: { cookie, secret: text }, generated: false }
}
