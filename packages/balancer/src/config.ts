import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { parseDuration } from './duration.js'
import { ConfigError } from './errors.js'
import type { BalancerOptions } from './balancer.js'
import type { UpstreamSpec } from './upstream.js'

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
    describe: 'An upstream, "host:port [max_fails=N] [fail_timeout=T]"; repeat for more',
    default: ['127.0.0.1:5000', '127.0.0.1:5001'],
    array: true,
  },
  'max-fails': { describe: 'Failures within fail-timeout that mark an upstream down; 0: never (nginx max_fails)', default: 1 },
  'fail-timeout': { describe: 'Failure window, and how long a failed upstream is skipped (nginx fail_timeout)', default: '10s' },
  'connect-timeout': { describe: 'Wait for an upstream connection; then try the next (nginx proxy_connect_timeout)', default: '5s' },
  timeout: { describe: 'Wait for response headers, and for each read after them (nginx proxy_read_timeout)', default: '60s' },
  'retry-on-timeout': { describe: 'Try the next upstream after a response timeout too', default: false, boolean: true },
  retries: { describe: 'Most further tries after the first; default: each upstream once', default: undefined },
  'retry-timeout': { describe: 'Stop trying new upstreams this long after the request came; 0: no cap', default: 0 },
  'client-header-timeout': { describe: 'Time for a client to send the whole header block; then 408', default: '20s' },
  'client-body-timeout': { describe: 'Time between two reads of a request body (nginx client_body_timeout)', default: '60s' },
  'keepalive-timeout': { describe: 'How long an idle client connection is kept (nginx keepalive_timeout)', default: '75s' },
  'upstream-idle-timeout': { describe: "How long an idle upstream connection is kept; below the backends' keep-alive", default: '4s' },
  'health-path': { describe: 'Path to check actively, e.g. /healthz; off unless set', default: undefined },
  'health-interval': { describe: 'Time between two checks of an upstream', default: '2s' },
  'health-timeout': { describe: 'Time a check may take', default: '1s' },
  'healthy-threshold': { describe: 'Consecutive passes that bring an upstream up', default: 2 },
  'unhealthy-threshold': { describe: 'Consecutive failures that take an upstream down', default: 3 },
  'health-status': { describe: 'Statuses that pass a check, as a range', default: '200-399' },
  'drain-timeout': { describe: 'On SIGTERM/SIGINT, time in-flight requests get to finish', default: '30s' },
  quiet: { describe: 'No per-request log lines', default: false, boolean: true },
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
  extends Required<Omit<BalancerOptions, 'log' | 'accessLog' | 'health' | 'retries'>>,
    Pick<BalancerOptions, 'health' | 'retries'> {
  port: number
  host: string
  /** On SIGTERM / SIGINT, time in-flight requests get to finish, in ms. */
  drainTimeout: number
  /** No per-request log lines. */
  quiet: boolean
}

/** A whole number in [min, max], from a number or a string of digits. */
function parseInteger(value: unknown, what: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`)
  }
  return n
}

/**
 * Parses an upstream the way nginx writes a `server` line: `host:port`, then optional
 * `max_fails=N` and `fail_timeout=T`. IPv6 addresses go in brackets: `[::1]:5000`.
 */
export function parseUpstream(spec: unknown): UpstreamSpec {
  if (typeof spec !== 'string') {
    throw new ConfigError(`upstream: ${JSON.stringify(spec)} is not a string like "127.0.0.1:5000"`)
  }
  const params = spec.trim().split(/\s+/)
  const address = params.shift() as string
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+)):(\d+)$/.exec(address)
  if (m === null || (m[1] !== undefined && isIP(m[1]) !== 6)) {
    throw new ConfigError(`upstream: ${JSON.stringify(spec)} is not host:port (e.g. 127.0.0.1:5000 or [::1]:5000)`)
  }
  const host = m[1] ?? (m[2] as string)
  const out: UpstreamSpec = { host, port: parseInteger(m[3], `upstream ${address} port`, 1, 65535) }
  for (const param of params) {
    const [key, value] = param.split('=', 2)
    if (key === 'max_fails' && value !== undefined) {
      out.maxFails = parseInteger(value, `upstream ${address} max_fails`, 0, 1_000_000)
    } else if (key === 'fail_timeout' && value !== undefined) {
      out.failTimeout = parseDuration(value, `upstream ${address} fail_timeout`)
    } else {
      throw new ConfigError(`upstream ${address}: unknown parameter ${JSON.stringify(param)} (allowed: max_fails=N, fail_timeout=T)`)
    }
  }
  return out
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

function parseBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${what}: ${JSON.stringify(value)} is not true or false`)
  return value
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
  return {
    port: parseInteger(pick('port'), 'port', 0, 65535),
    host,
    drainTimeout: duration('drain-timeout'),
    quiet: parseBoolean(pick('quiet'), 'quiet'),
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
    keepAliveTimeout: duration('keepalive-timeout'),
    upstreamIdleTimeout: duration('upstream-idle-timeout'),
    health,
  }
}
