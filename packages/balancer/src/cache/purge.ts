// The purge request of the admin listener: `DELETE /cache`, `?url=` one URL, `?prefix=` a path prefix.
import type { PurgeTarget } from './edge-cache.js'

/**
 * Reads what a `DELETE /cache` request purges from its query (`search`, with or without the `?`):
 * `url=/path?query` (percent-decoded: one URL under every Host), `prefix=/images/` (every URL
 * that starts so), or nothing (everything). Returns the target, or a message saying what is wrong.
 */
export function parsePurge(search: string): PurgeTarget | string {
  const params = new URLSearchParams(search)
  const names = [...new Set(params.keys())]
  if (names.length === 0) return { all: true }
  if (names.length > 1 || params.getAll(names[0] as string).length > 1) return 'give one of url= or prefix=, once'
  const name = names[0] as string
  const value = params.get(name) as string
  if (name !== 'url' && name !== 'prefix') return `unknown parameter ${JSON.stringify(name)}: give url=/path?query or prefix=/path/`
  if (!value.startsWith('/')) return `${name}: ${JSON.stringify(value)} is not a path starting with /`
  return name === 'url' ? { url: value } : { prefix: value }
}
