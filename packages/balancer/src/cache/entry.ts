// One stored response: its head as a hit sends it, its body, its policy and freshness.
import type CachePolicy from 'http-cache-semantics'
import type { Freshness } from './rules.js'

/** Roughly what the objects around an entry cost (policy, arrays, strings' headers), so that a budget of many tiny entries still holds. */
export const ENTRY_OVERHEAD = 512

/** Bodies up to this many bytes are also kept as a string (Entry.text); past it the copy costs more than it saves. */
export const INLINE_MAX = 16 * 1024

/**
 * Response headers a stored response never carries: hop-by-hop ones (RFC 9110 §7.6.1, they
 * describe one connection), and the ones a hit sets afresh: `Age` (from the policy), `Content-Length`
 * (from the stored body) and `X-Cache-Status`.
 */
const NOT_STORED = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'age',
  'content-length',
  'x-cache-status',
])

export interface Entry {
  readonly status: number
  readonly reason: string
  /**
   * The head a hit sends, as a flat `[name, value, …]` list with the casing the upstream used:
   * what it sent, less NOT_STORED and what its `Connection` named, plus `Content-Length`. `Age`
   * and `X-Cache-Status` are added per hit. The origin's `Date` is kept (RFC 9110 §6.6.1: the
   * time the origin made the response), as nginx and Varnish keep it.
   */
  readonly head: readonly string[]
  readonly body: Buffer
  /**
   * A small body again as a latin1 string, byte for byte: node:http sends a string body in one
   * write with the head, where a Buffer body goes out as a second buffer of a writev. undefined
   * past INLINE_MAX.
   */
  readonly text: string | undefined
  /** The library's view of the response: its age, and how to revalidate it. */
  readonly policy: CachePolicy
  readonly freshness: Freshness
  /** The `Vary` names it was stored under, and the request's selection among them (vary.ts). */
  readonly varyNames: readonly string[]
  readonly variantKey: string
  readonly etag: string | undefined
  readonly lastModified: string | undefined
  /** Bytes it holds against the budget: status line, headers as on the wire, body, overhead. */
  readonly size: number
}

/** The parts an entry is made of. */
export interface EntryParts {
  status: number
  reason: string
  /** The upstream's headers, flat, as received (`rawHeaders`). */
  rawHeaders: readonly string[]
  body: Buffer
  policy: CachePolicy
  freshness: Freshness
  varyNames: readonly string[]
  variantKey: string
}

/** The names a `Connection` value lists: hop-by-hop too. */
function connectionNames(raw: readonly string[]): Set<string> {
  const out = new Set<string>()
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase() !== 'connection') continue
    for (const t of (raw[i + 1] as string).split(',')) out.add(t.trim().toLowerCase())
  }
  return out
}

export function createEntry(p: EntryParts): Entry {
  const named = connectionNames(p.rawHeaders)
  const head: string[] = []
  let etag: string | undefined
  let lastModified: string | undefined
  let size = ENTRY_OVERHEAD + 17 + p.reason.length + p.body.length
  for (let i = 0; i < p.rawHeaders.length; i += 2) {
    const name = p.rawHeaders[i] as string
    const value = p.rawHeaders[i + 1] as string
    const lower = name.toLowerCase()
    if (NOT_STORED.has(lower) || named.has(lower)) continue
    if (lower === 'etag') etag = value
    else if (lower === 'last-modified') lastModified = value
    head.push(name, value)
    size += name.length + value.length + 4
  }
  // A 204 has no body and may not say Content-Length (RFC 9110 §8.6).
  if (p.status !== 204) {
    const length = String(p.body.length)
    head.push('Content-Length', length)
    size += 18 + length.length
  }
  const text = p.body.length <= INLINE_MAX ? p.body.toString('latin1') : undefined
  if (text !== undefined) size += text.length
  return {
    status: p.status,
    reason: p.reason,
    head,
    text,
    body: p.body,
    policy: p.policy,
    freshness: p.freshness,
    varyNames: p.varyNames,
    variantKey: p.variantKey,
    etag,
    lastModified,
    size,
  }
}

/**
 * The entry a 304 made fresh again (RFC 9111 §4.3.4): the stored body under the stored head with
 * the 304's fields in place of theirs (the library's `revalidatedPolicy` merges them the same way;
 * framing and coding fields stay the stored ones), and the new policy and freshness.
 */
export function refreshEntry(old: Entry, rawHeaders: readonly string[], policy: CachePolicy, freshness: Freshness): Entry {
  const kept = new Set(['content-length', 'content-encoding', 'content-range', 'transfer-encoding'])
  // The 304's fields by name, each with all its lines (a name may repeat, as Link does).
  const fresh = new Map<string, string[]>()
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const lower = (rawHeaders[i] as string).toLowerCase()
    if (kept.has(lower)) continue
    const lines = fresh.get(lower)
    if (lines === undefined) fresh.set(lower, [rawHeaders[i] as string, rawHeaders[i + 1] as string])
    else lines.push(rawHeaders[i] as string, rawHeaders[i + 1] as string)
  }
  const merged: string[] = []
  const replaced = new Set<string>()
  for (let i = 0; i < old.head.length; i += 2) {
    const lower = (old.head[i] as string).toLowerCase()
    const update = fresh.get(lower)
    if (update === undefined) merged.push(old.head[i] as string, old.head[i + 1] as string)
    else if (!replaced.has(lower)) {
      // Where the stored field stood, every line of the 304's; the stored lines go.
      merged.push(...update)
      replaced.add(lower)
    }
  }
  // Fields the 304 adds that the stored head lacked; createEntry drops the hop-by-hop ones and
  // sets Content-Length from the body again.
  for (const [lower, lines] of fresh) if (!replaced.has(lower)) merged.push(...lines)
  return createEntry({
    status: old.status,
    reason: old.reason,
    rawHeaders: merged,
    body: old.body,
    policy,
    freshness,
    varyNames: old.varyNames,
    variantKey: old.variantKey,
  })
}
