import { ConfigError } from './errors.js'

/**
 * Parses a duration as nginx and HAProxy write them: `500ms`, `10s`, `2m`.
 * A bare number means seconds, as in nginx. Returns milliseconds.
 * @throws ConfigError naming `what` and the bad value.
 */
export function parseDuration(value: unknown, what: string): number {
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0) return value * 1000
  const m = typeof value === 'string' ? /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim()) : null
  if (!m) {
    throw new ConfigError(`${what}: ${JSON.stringify(value)} is not a duration (use e.g. 500ms, 10s, 2m)`)
  }
  const factor = m[2] === 'ms' ? 1 : m[2] === 'm' ? 60_000 : 1000
  return Number(m[1]) * factor
}
