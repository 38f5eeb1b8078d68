// The configuration in force: flags over the file over the defaults, each value checked, as one ResolvedConfig.
import { loadAdminToken } from '../admin/auth.js'
import { parseResolver } from '../upstreams/dns-lookup.js'
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { parseAllowedHost, shownHost } from '../admin/allowed-hosts.js'
import { ConfigError } from '../errors.js'
import { LOG_FORMATS, type LogFormat } from '../observe/access-log.js'
import { POLICY_NAMES, type BalancerOptions, type PolicyName, type UpstreamSpec } from '../options.js'
import { Sticky } from '../select/sticky.js'
import { TLS_VERSIONS, type CertificateFiles, type TlsVersion } from '../server/certificates.js'
import { readUpstreamCa } from '../upstreams/tls.js'
import { parseBoolean, parseDuration, parseHashKey, parseInteger, parseStatusRange, parseUpstream } from './parse.js'
import { SETTINGS, type SettingKey } from './settings.js'
import { resolveCacheOptions } from '../cache/settings.js'

/** The whole configuration: the listener, the process, and the balancer's options. */
export interface ResolvedConfig
  extends
    Required<Omit<BalancerOptions, 'log' | 'accessLog' | 'health' | 'retries' | 'sticky' | 'cache' | 'upstreamCa' | 'hsts'>>,
    Pick<BalancerOptions, 'health' | 'retries' | 'sticky' | 'cache' | 'upstreamCa' | 'hsts'> {
  /** The plain listener's port; undefined with `--port off`. */
  port: number | undefined
  host: string
  /** The HTTPS listener, when `--https-port` is set. */
  https: HttpsSettings | undefined
  /** Whether the plain port answers 308 to HTTPS. */
  redirectHttps: boolean
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
  /** The admin token, from `--admin-token-file` or SWITCHYARD_ADMIN_TOKEN; undefined: none. */
  adminToken: string | undefined
  /** `--state-file`: where the runtime state is saved; undefined: nowhere. */
  stateFile: string | undefined
  /** The cap on the time between two lookups of a `resolve` line, in ms. */
  resolveInterval: number
  /** `--resolver IP[:port]`; undefined: the system's. */
  resolver: string | undefined
}

/** A file name, or undefined when the setting is off. */
function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a file name`)
  return value
}

/** The HTTPS listener's settings. */
export interface HttpsSettings {
  port: number
  /** The certificate and key pairs, in the order given: the first is the default. */
  certificates: CertificateFiles[]
  /** Offer h2 by ALPN. */
  http2: boolean
  minVersion: TlsVersion
}

/** A flag that may be given once or repeated: undefined, a value, or a list. */
const listOf = (value: unknown): unknown[] => (value === undefined ? [] : Array.isArray(value) ? value : [value])

/** `--https-port` with its `--tls-cert` / `--tls-key` pairs; undefined when HTTPS is off. */
function resolveHttps(port: unknown, certs: unknown, keys: unknown, http2: boolean, minVersion: unknown): HttpsSettings | undefined {
  const cert = listOf(certs)
  const key = listOf(keys)
  if (!TLS_VERSIONS.includes(minVersion as TlsVersion)) {
    throw new ConfigError(`tls-min-version: ${JSON.stringify(minVersion)} is not ${TLS_VERSIONS.join(' or ')}`)
  }
  if (port === undefined) {
    if (cert.length + key.length > 0) throw new ConfigError('tls-cert: certificates are for the HTTPS listener; give --https-port too')
    return undefined
  }
  if (cert.length === 0 || cert.length !== key.length) {
    throw new ConfigError(
      `https-port: needs --tls-cert FILE --tls-key FILE pairs (got ${cert.length} certificate(s) and ${key.length} key(s))`,
    )
  }
  const file = (what: string, v: unknown): string => {
    if (typeof v !== 'string' || v === '') throw new ConfigError(`${what}: ${JSON.stringify(v)} is not a file`)
    return v
  }
  return {
    port: parseInteger(port, 'https-port', 0, 65535),
    certificates: cert.map((c, i) => ({ cert: file('tls-cert', c), key: file('tls-key', key[i]) })),
    http2,
    minVersion: minVersion as TlsVersion,
  }
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
  // Checked even while the checks are off, so that a typo does not wait for --health-path to show.
  const healthStatus = parseStatusRange(pick('health-status'), 'health-status')
  const health =
    healthPath === undefined
      ? undefined
      : {
          path: healthPath,
          interval: duration('health-interval'),
          timeout: duration('health-timeout'),
          healthyThreshold: count('healthy-threshold', 1),
          unhealthyThreshold: count('unhealthy-threshold', 1),
          status: healthStatus,
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
  const https = resolveHttps(
    pick('https-port'),
    pick('tls-cert'),
    pick('tls-key'),
    parseBoolean(pick('http2'), 'http2'),
    pick('tls-min-version'),
  )
  const port = pick('port') === 'off' ? undefined : parseInteger(pick('port'), 'port', 0, 65535)
  if (port === undefined && https === undefined) throw new ConfigError('port: "off" leaves no listener; give --https-port too')
  const redirectHttps = parseBoolean(pick('redirect-https'), 'redirect-https')
  if (redirectHttps && (https === undefined || port === undefined)) {
    throw new ConfigError('redirect-https: needs both a plain --port and an --https-port to redirect to')
  }
  const hsts = pick('hsts')
  const upstreamCa = pick('upstream-ca')
  return {
    port,
    host,
    https,
    redirectHttps,
    hsts: hsts === undefined ? undefined : duration('hsts'),
    upstreamCa: upstreamCa === undefined ? undefined : readUpstreamCa(String(upstreamCa)),
    drainTimeout: duration('drain-timeout'),
    quiet,
    accessLogTo: quiet || accessLog === 'off' ? undefined : accessLog,
    logFormat: logFormat as LogFormat,
    adminPort: adminPort === undefined ? undefined : parseInteger(adminPort, 'admin-port', 0, 65535),
    adminHost,
    adminAllowedHosts: parseAllowedHosts(pick('admin-allowed-host')),
    adminToken: loadAdminToken(optionalString(pick('admin-token-file'), 'admin-token-file')),
    stateFile: optionalString(pick('state-file'), 'state-file'),
    resolveInterval: duration('resolve-interval'),
    resolver: pick('resolver') === undefined ? undefined : parseResolver(pick('resolver')),
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
    cache: resolveCacheOptions(pick),
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
