// Answers a client from a stored response: whole, as a HEAD, as one byte range, or as a 304.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Entry } from './entry.js'
import type { CacheStatus } from './types.js'

/** What a Range header asks of a body `size` bytes long (RFC 9110 §14.2). */
export type RangeAsk = { start: number; end: number } | 'whole' | 'unsatisfiable'

/**
 * Reads a `Range` header for one byte range: `bytes=a-b`, `bytes=a-` or `bytes=-n`. Several
 * ranges, another unit or a value that does not parse get the whole body (a server may ignore
 * Range, RFC 9110 §14.2, and nginx's cache answers several ranges whole too); a range that starts
 * past the end is unsatisfiable (416).
 */
export function parseRange(value: string, size: number): RangeAsk {
  const m = /^bytes=\s*(\d*)\s*-\s*(\d*)\s*$/i.exec(value)
  if (m === null || (m[1] === '' && m[2] === '')) return 'whole'
  let start: number
  let end: number
  if (m[1] === '') {
    // A suffix: the last n bytes.
    const n = Number(m[2])
    if (n === 0) return 'unsatisfiable'
    start = Math.max(0, size - n)
    end = size - 1
  } else {
    start = Number(m[1])
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)
    if (m[2] !== '' && Number(m[2]) < start) return 'whole'
  }
  if (start >= size) return 'unsatisfiable'
  return { start, end }
}

/** Whether an entity tag is in an `If-None-Match` list, by weak comparison (RFC 9110 §13.1.2). */
function etagListed(list: string, etag: string): boolean {
  if (list.trim() === '*') return true
  const bare = etag.replace(/^W\//, '')
  return list.split(',').some(t => t.trim().replace(/^W\//, '') === bare)
}

/**
 * Whether the client already has this response (RFC 9110 §13.1.2, §13.1.3, in §13.2.2's order):
 * `If-None-Match` when sent, else `If-Modified-Since` against `Last-Modified`. Only for GET and
 * HEAD, which are all the cache answers.
 */
function notModified(req: IncomingMessage, entry: Entry): boolean {
  const inm = req.headers['if-none-match']
  if (inm !== undefined) return entry.etag !== undefined && etagListed(inm, entry.etag)
  const ims = req.headers['if-modified-since']
  if (ims === undefined || entry.lastModified === undefined || entry.status !== 200) return false
  const since = Date.parse(ims)
  const modified = Date.parse(entry.lastModified)
  return Number.isFinite(since) && Number.isFinite(modified) && modified <= since
}

/** Whether an `If-Range` validator still names the stored response (RFC 9110 §13.1.5: a strong ETag, or the exact date). */
function ifRangeHolds(value: string, entry: Entry): boolean {
  if (value.startsWith('"')) return entry.etag === value
  return entry.lastModified === value
}

/** The stored head without its Content-Length, which a 206 or 304 replaces or leaves out. */
function headWithoutLength(entry: Entry): string[] {
  // createEntry puts Content-Length last, for every status but 204.
  return entry.status === 204 ? entry.head.slice() : entry.head.slice(0, -2)
}

/**
 * Sends `entry` to the client with `Age` (`ageSeconds`, the library's `policy.age()`, rounded as
 * it rounds it) and `X-Cache-Status: status`. Returns the body bytes sent. The status, headers
 * and body are written in one `writeHead` + `end`, the cheapest way through node:http.
 */
export function deliver(req: IncomingMessage, res: ServerResponse, entry: Entry, status: CacheStatus, ageSeconds: number): number {
  const age = String(Math.round(ageSeconds))
  if (notModified(req, entry)) {
    const head = headWithoutLength(entry)
    head.push('Age', age, 'X-Cache-Status', status)
    res.writeHead(304, head)
    res.end()
    return 0
  }
  const range = req.headers.range
  if (range !== undefined && entry.status === 200) {
    const ifRange = req.headers['if-range']
    const ask = ifRange === undefined || ifRangeHolds(String(ifRange), entry) ? parseRange(range, entry.body.length) : 'whole'
    if (ask !== 'whole') return deliverRange(req, res, entry, status, age, ask)
  }
  const head = entry.head.slice()
  head.push('Age', age, 'X-Cache-Status', status)
  res.writeHead(entry.status, entry.reason, head)
  if (req.method === 'HEAD') {
    res.end()
    return 0
  }
  if (entry.text === undefined) res.end(entry.body)
  else res.end(entry.text, 'latin1')
  return entry.body.length
}

function deliverRange(
  req: IncomingMessage,
  res: ServerResponse,
  entry: Entry,
  status: CacheStatus,
  age: string,
  ask: Exclude<RangeAsk, 'whole'>,
): number {
  const size = entry.body.length
  const head = headWithoutLength(entry)
  head.push('Age', age, 'X-Cache-Status', status)
  if (ask === 'unsatisfiable') {
    head.push('Content-Range', `bytes */${size}`, 'Content-Length', '0')
    res.writeHead(416, head)
    res.end()
    return 0
  }
  const part = entry.body.subarray(ask.start, ask.end + 1)
  head.push('Content-Range', `bytes ${ask.start}-${ask.end}/${size}`, 'Content-Length', String(part.length))
  res.writeHead(206, head)
  if (req.method === 'HEAD') {
    res.end()
    return 0
  }
  res.end(part)
  return part.length
}
