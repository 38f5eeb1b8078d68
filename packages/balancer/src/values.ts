import { ConfigError } from './errors.js'

/**
 * Parses a duration as nginx and HAProxy write them: `500ms`, `10s`, `2m`.
 * A bare number means seconds, as in nginx. Returns milliseconds.
 * @throws ConfigError naming `what` and the bad value.
 */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim()) : null
  if (!m) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a duration (use e.g. 500ms, 10s, 2m, 1h)`)
  }
  const factor = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : m[2] === 'h' ? 3_600_000 : 1000
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
