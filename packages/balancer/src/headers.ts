import type { ClientRequest, IncomingMessage } from 'node:http'

/**
 * Hop-by-hop headers (RFC 9110 §7.6.1), the list Go's httputil and so Caddy use. They
 * describe one connection, so a proxy must not pass them on. http-proxy copies them all.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
])

/** No names: what a message without a `Connection` header lists, shared rather than made per request. */
const NONE: ReadonlySet<string> = new Set()

/** The header names a `Connection` value lists, lower-cased: they are hop-by-hop too. */
function connectionTokens(value: string | undefined): ReadonlySet<string> {
  if (value === undefined) return NONE
  // Node joins repeated Connection headers with ', ', so one string holds them all.
  return new Set(value.split(',').map(t => t.trim().toLowerCase()))
}

/** Whether the request carries a body: a Content-Length above 0 or any Transfer-Encoding. */
export function hasBody(req: IncomingMessage): boolean {
  const te = req.headers['transfer-encoding']
  if (te !== undefined) return true
  const cl = req.headers['content-length']
  return cl !== undefined && cl !== '0'
}

/** How many times a header appears in the raw request, for duplicates Node folds silently. */
export function countHeader(req: IncomingMessage, lowerName: string): number {
  let n = 0
  const raw = req.rawHeaders
  for (let i = 0; i < raw.length; i += 2) if (raw[i]?.toLowerCase() === lowerName) n++
  return n
}

/**
 * Rewrites the headers of the outgoing request that http-proxy built from `req`:
 * - drops hop-by-hop headers and those `Connection` names;
 * - frames the body itself: a chunked request is sent chunked even for DELETE and
 *   OPTIONS, where http-proxy would send `Content-Length: 0` and then the body, which
 *   desyncs a kept-alive upstream connection;
 * - appends the peer to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
 *   `X-Forwarded-Host`, overwriting the client's (http-proxy's `xfwd` keeps theirs).
 * The client's `Host` passes unchanged.
 */
export function prepareRequestHeaders(out: ClientRequest, req: IncomingMessage, chunked: boolean): void {
  const named = connectionTokens(req.headers.connection)
  // Only the headers present (a handful) are looked at, rather than removing all nine
  // hop-by-hop names one call each.
  for (const name of out.getHeaderNames()) if (HOP_BY_HOP.has(name) || named.has(name)) out.removeHeader(name)
  // Removing Connection stops Node adding its own, so say what the keep-alive agent means.
  out.setHeader('connection', 'keep-alive')
  if (chunked) {
    out.removeHeader('content-length')
    out.setHeader('transfer-encoding', 'chunked')
  }
  const peer = `${req.socket.remoteAddress}`
  const prior = req.headers['x-forwarded-for']
  out.setHeader('x-forwarded-for', prior === undefined || prior === '' ? peer : `${prior}, ${peer}`)
  // The balancer listens on plain HTTP only; TLS termination would set 'https' here.
  out.setHeader('x-forwarded-proto', 'http')
  const host = req.headers.host
  if (host === undefined) out.removeHeader('x-forwarded-host')
  else out.setHeader('x-forwarded-host', host)
}

/**
 * The upstream response's headers as a flat `[name, value, …]` list for one `writeHead`,
 * with the casing and repeats (Set-Cookie) the upstream sent, less the hop-by-hop ones.
 */
export function responseHeaders(res: IncomingMessage): string[] {
  const named = connectionTokens(res.headers.connection)
  const raw = res.rawHeaders
  const out: string[] = []
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    const lower = name.toLowerCase()
    if (HOP_BY_HOP.has(lower) || named.has(lower)) continue
    out.push(name, raw[i + 1] as string)
  }
  return out
}
