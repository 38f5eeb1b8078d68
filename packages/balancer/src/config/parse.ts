// Reading one value of the configuration: durations, whole numbers, booleans, upstream lines, hash keys, status ranges.
import { isIP } from 'node:net'
import { ConfigError } from '../errors.js'
import type { HashKey, UpstreamSpec } from '../options.js'

/**
 * Parses a duration as nginx and HAProxy write them: `500ms`, `10s`, `2m`, `1h`, `365d`.
 * A bare number means seconds, as in nginx. Returns milliseconds.
 * @throws ConfigError naming `what` and the bad value.
 */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$/.exec(value.trim()) : null
  if (!m) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a duration (use e.g. 500ms, 10s, 2m, 1h, 365d)`)
  }
  const factor = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : m[2] === 'd' ? 86_400_000 : 1000
  return Number(m[1]) * factor
}

/** A whole number in [min, max], from a number or a string of digits. */
export function parseInteger(value: unknown, what: string, min: number, max: number): number {
  const n = typeof value === 'string' && /^\d+$/.test(value.trim()) ? Number(value) : value
  if (typeof n !== 'number' || !Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`)
  }
  return n
}

export function parseBoolean(value: unknown, what: string): boolean {
  if (typeof value !== 'boolean') throw new ConfigError(`${what}: ${JSON.stringify(value)} is not true or false`)
  return value
}

const PARAMS =
  'weight=N, max_fails=N, fail_timeout=T, max_conns=N, slow_start=T, backup, down, tls, tls_servername=NAME, resolve, service=NAME'
const OBJECT_KEYS = new Set([
  'address',
  'weight',
  'max_fails',
  'fail_timeout',
  'max_conns',
  'slow_start',
  'backup',
  'down',
  'tls',
  'tls_servername',
  'resolve',
  'service',
])

/** A config-file upstream object, `{"address": "h:p", "weight": 3, "backup": true}`, as a server line. */
function objectToLine(spec: Record<string, unknown>): string {
  const address = spec.address
  if (typeof address !== 'string') {
    throw new ConfigError(`upstream: ${JSON.stringify(spec)} has no "address" like "127.0.0.1:5000"`)
  }
  const tokens = [address]
  for (const [key, value] of Object.entries(spec)) {
    if (!OBJECT_KEYS.has(key))
      throw new ConfigError(`upstream ${address}: unknown key ${JSON.stringify(key)} (allowed: address, ${PARAMS})`)
    if (key === 'address' || value === false) continue
    tokens.push(value === true ? key : `${key}=${String(value).replace(/\s/g, '')}`)
  }
  return tokens.join(' ')
}

/**
 * Parses an upstream the way nginx writes a `server` line: `host:port`, then optional
 * `weight=N max_fails=N fail_timeout=T max_conns=N slow_start=T backup down`. IPv6 addresses
 * go in brackets: `[::1]:5000`. A config file may give an object with the same keys.
 */
export function parseUpstream(spec: unknown): UpstreamSpec {
  const line = typeof spec === 'object' && spec !== null && !Array.isArray(spec) ? objectToLine(spec as Record<string, unknown>) : spec
  if (typeof line !== 'string') {
    throw new ConfigError(`upstream: ${JSON.stringify(spec)} is not a string like "127.0.0.1:5000"`)
  }
  const params = line.trim().split(/\s+/)
  const address = params.shift() as string
  // nginx `service=` takes a bare name: the SRV records give the ports.
  const service = params.find(p => p.startsWith('service='))
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^\s:[\]/]+))(?::(\d+))?$/.exec(address)
  if (m === null || (m[1] !== undefined && isIP(m[1]) !== 6) || (m[3] === undefined) !== (service !== undefined)) {
    const form =
      service === undefined
        ? 'host:port (e.g. 127.0.0.1:5000 or [::1]:5000)'
        : 'a host name without a port, as service= takes the ports from SRV records'
    throw new ConfigError(`upstream: ${JSON.stringify(line)} is not ${form}`)
  }
  const host = m[1] ?? (m[2] as string)
  const out: UpstreamSpec = { host, port: service === undefined ? parseInteger(m[3], `upstream ${address} port`, 1, 65535) : 0 }
  for (const param of params) {
    const [key, value] = param.split('=', 2)
    const what = `upstream ${address} ${key}`
    if (value === undefined && key === 'backup') out.backup = true
    else if (value === undefined && key === 'down') out.down = true
    else if (value === undefined && key === 'resolve') out.resolve = true
    else if (value !== undefined && key === 'service' && /^[A-Za-z0-9_.-]+$/.test(value)) out.service = value
    else if (value !== undefined && key === 'weight') out.weight = parseInteger(value, what, 1, 1_000_000)
    else if (value !== undefined && key === 'max_fails') out.maxFails = parseInteger(value, what, 0, 1_000_000)
    else if (value !== undefined && key === 'max_conns') out.maxConns = parseInteger(value, what, 0, 1_000_000)
    else if (value !== undefined && key === 'fail_timeout') out.failTimeout = parseDuration(value, what)
    else if (value !== undefined && key === 'slow_start') out.slowStart = parseDuration(value, what)
    else if (value === undefined && key === 'tls') out.tls = { ...out.tls }
    else if (value !== undefined && key === 'tls_servername') out.tls = { ...out.tls, servername: parseServername(value, what) }
    else throw new ConfigError(`upstream ${address}: unknown parameter ${JSON.stringify(param)} (allowed: ${PARAMS})`)
  }
  if (out.resolve === true && isIP(host) !== 0) throw new ConfigError(`upstream ${address}: resolve needs a host name, not an IP address`)
  if (out.service !== undefined && out.resolve !== true) throw new ConfigError(`upstream ${address}: service= needs resolve, as in nginx`)
  return out
}

/** A DNS name to send as SNI: letters, digits, hyphens and dots (RFC 6066 §3: no address). */
function parseServername(value: string, what: string): string {
  if (!/^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?$/.test(value) || isIP(value) !== 0) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a DNS name to send as SNI`)
  }
  return value.toLowerCase()
}

/** Parses `ip | path | header:NAME | cookie:NAME | query:NAME`. */
export function parseHashKey(value: unknown): HashKey {
  if (value === 'ip' || value === 'path') return { kind: value }
  const m = typeof value === 'string' ? /^(header|cookie|query):([\x21-\x7e]+)$/.exec(value) : null
  if (m === null) {
    throw new ConfigError(`hash-key: ${JSON.stringify(value)} is not ip, path, header:NAME, cookie:NAME or query:NAME`)
  }
  const kind = m[1] as 'header' | 'cookie' | 'query'
  return { kind, name: kind === 'header' ? (m[2] as string).toLowerCase() : (m[2] as string) }
}

/** A status range such as `200-399`, or one status such as `200`. */
export function parseStatusRange(value: unknown, what: string): [number, number] {
  const m = typeof value === 'string' ? /^([1-5]\d\d)(?:-([1-5]\d\d))?$/.exec(value.trim()) : null
  const low = Number(m?.[1])
  const high = m?.[2] === undefined ? low : Number(m[2])
  if (!(low <= high)) throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a status range like 200-399`)
  return [low, high]
}
