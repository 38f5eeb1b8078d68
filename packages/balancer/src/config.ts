import { readFileSync } from 'node:fs'
import { isIP } from 'node:net'
import { parseDuration } from './duration.js'
import { ConfigError } from './errors.js'
import type { UpstreamSpec } from './upstream.js'

/** The settings the CLI and the config file share, by the flags' long names. */
export interface ResolvedConfig {
  /** Port to listen on. Default 8080; 0 picks a free one. */
  port: number
  /** Address to listen on. Default 0.0.0.0. */
  host: string
  /** Default: the tutorial's two backends, 127.0.0.1:5000 and 127.0.0.1:5001. */
  upstreams: UpstreamSpec[]
  /** Default 1 (nginx `max_fails`). */
  maxFails: number
  /** In ms. Default 10 000 (nginx `fail_timeout`). */
  failTimeout: number
  /** Upstream response-header timeout, in ms. Default 60 000 (nginx `proxy_read_timeout`). */
  timeout: number
  /** No per-request log lines. Default false. */
  quiet: boolean
}

/** The keys a config file may hold: the flags' long names. */
export const CONFIG_KEYS = ['port', 'host', 'upstream', 'max-fails', 'fail-timeout', 'timeout', 'quiet'] as const

const DEFAULTS = {
  port: 8080,
  host: '0.0.0.0',
  upstream: ['127.0.0.1:5000', '127.0.0.1:5001'],
  'max-fails': 1,
  'fail-timeout': '10s',
  timeout: '60s',
  quiet: false,
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

/**
 * Merges the settings: flags override the file, the file overrides the defaults.
 * Keys are the flags' long names; a flag left unset is `undefined`.
 */
export function resolveConfig(
  flags: Partial<Record<(typeof CONFIG_KEYS)[number], unknown>>,
  file: Record<string, unknown> = {},
): ResolvedConfig {
  const pick = (key: (typeof CONFIG_KEYS)[number]): unknown => flags[key] ?? file[key] ?? DEFAULTS[key]
  const upstream = pick('upstream')
  const list = Array.isArray(upstream) ? upstream : [upstream]
  if (list.length === 0) throw new ConfigError('upstream: at least one is needed, like 127.0.0.1:5000')
  const upstreams = list.map(parseUpstream)
  const seen = new Set<string>()
  for (const u of upstreams) {
    const id = `${u.host}:${u.port}`
    if (seen.has(id)) throw new ConfigError(`upstream: ${id} is listed twice`)
    seen.add(id)
  }
  const host = pick('host')
  if (typeof host !== 'string' || host === '') {
    throw new ConfigError(`host: ${JSON.stringify(host)} is not an address to listen on`)
  }
  const quiet = pick('quiet')
  if (typeof quiet !== 'boolean') throw new ConfigError(`quiet: ${JSON.stringify(quiet)} is not true or false`)
  return {
    port: parseInteger(pick('port'), 'port', 0, 65535),
    host,
    upstreams,
    maxFails: parseInteger(pick('max-fails'), 'max-fails', 0, 1_000_000),
    failTimeout: parseDuration(pick('fail-timeout'), 'fail-timeout'),
    timeout: parseDuration(pick('timeout'), 'timeout'),
    quiet,
  }
}
