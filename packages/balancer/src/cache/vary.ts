// `Vary`: which request headers select a stored variant, and their values as compared.
import type { IncomingHttpHeaders } from 'node:http'

/** The header names a `Vary` value lists: lower case, each once, in order; `*` stays `*`. */
export function varyNames(value: string | string[] | undefined): string[] {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(',') : value
  const names: string[] = []
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase()
    if (name !== '' && !names.includes(name)) names.push(name)
  }
  return names
}

/** Marks a header the request did not send, apart from one it sent empty. */
const ABSENT = '\u0000'

/**
 * A request header's value as variants compare it: lower case, with no whitespace around commas
 * or at the ends. `gzip, deflate` and `GZIP,deflate` select the same variant, so a variation in
 * spelling does not store the same representation twice (Varnish's advice: normalize before you vary).
 */
export function normalizeValue(value: string | string[] | undefined): string {
  if (value === undefined) return ABSENT
  const text = Array.isArray(value) ? value.join(',') : value
  return text
    .toLowerCase()
    .split(',')
    .map(s => s.trim())
    .join(',')
}

/** The selection a request makes among variants that vary on `names`: its normalized values, joined. */
export function variantKey(names: readonly string[], headers: IncomingHttpHeaders): string {
  if (names.length === 0) return ''
  let key = normalizeValue(headers[names[0] as string])
  for (let i = 1; i < names.length; i++) key += `\n${normalizeValue(headers[names[i] as string])}`
  return key
}
