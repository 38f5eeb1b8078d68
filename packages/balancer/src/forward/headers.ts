// The headers a request carries upstream and a response carries back: hop-by-hop removed, X-Forwarded-* set.
import type { TLSSocket } from 'node:tls'
import { STATUS_CODES, type ClientRequest, type IncomingMessage } from 'node:http'
import { memoized } from '../util/memo.js'

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

/**
 * Headers a `Connection` value may not remove. RFC 9110 §7.6.1 lets a sender list any header
 * as hop-by-hop, but the framing headers and `Host` describe the message itself: dropping a
 * listed `Content-Length` sent a GET's body upstream unframed, where it was read as a second
 * request (a smuggle). nginx ignores such names too and frames the body itself. The
 * `X-Forwarded-*` headers are set by the balancer after the copy, so a listed one is replaced,
 * not lost.
 */
const FRAMING = new Set(['content-length', 'host'])

/** No names: what a message without a `Connection` header lists, shared rather than made per request. */
const NONE: ReadonlySet<string> = new Set()

/**
 * The header names a `Connection` value lists, lower-cased: they are hop-by-hop too. Almost
 * every message says `keep-alive` or `close`, so the split is done once per distinct value
 * rather than once per message (memoized, bounded to 64 values).
 */
const splitConnection = memoized(
  // Node joins repeated Connection headers with ', ', so one string holds them all.
  (value: string): ReadonlySet<string> => new Set(value.split(',').map(t => t.trim().toLowerCase())),
  64,
)

function connectionTokens(value: string | undefined): ReadonlySet<string> {
  return value === undefined ? NONE : splitConnection(value)
}

/** The TLS version a listener noted on a connection after its handshake (noteTlsVersion). */
const kTlsVersion = Symbol('switchyard.tlsVersion')
type Noted = object & { [kTlsVersion]?: string }

/** Notes a client connection's TLS version once, after its handshake, for every request on it. */
export function noteTlsVersion(socket: TLSSocket): void {
  setTlsVersion(socket, socket.getProtocol() as string)
}

/** Notes `version` on what stands for a client connection (an HTTP/2 request's socket), for tlsVersionOf. */
export function setTlsVersion(holder: object, version: string | undefined): void {
  ;(holder as Noted)[kTlsVersion] = version
}

/**
 * The TLS version of a client's connection (`TLSv1.3`) as its listener noted it; undefined over
 * plain HTTP. An HTTP/2 stream's proxy socket answers for its connection: one property read
 * through it, where `getProtocol()` per request cost three (the check, the method, a bound
 * copy of it) and a call into OpenSSL.
 */
export function tlsVersionOf(socket: object): string | undefined {
  return (socket as Noted)[kTlsVersion]
}

/** What a listener noted of a client's connection once, for every request on it (noteClient). */
export interface ClientNote {
  /** The client's address (peerOf). */
  readonly peer: string
  /** The connection's TLS version (tlsVersionOf). */
  readonly tlsVersion: string | undefined
}

/** Where a request, or what it reads it from, holds its ClientNote. */
export const kClientNote = Symbol('switchyard.clientNote')
type Holder = object & { [kClientNote]?: ClientNote }

/**
 * Notes on `holder` (an HTTP/2 session) its client's address and TLS version, read once from
 * `socket`, for every request that finds the note there (clientNoteOf). An HTTP/2 request's
 * `socket` is a Proxy that Node makes per stream, and each read through it is a trap call that
 * reads the session's socket in turn: two per request for what is the same for the whole
 * connection.
 */
export function noteClient(holder: object, socket: { remoteAddress?: string | undefined }): void {
  ;(holder as Holder)[kClientNote] = { peer: peerOf(socket), tlsVersion: tlsVersionOf(socket) }
}

/** The note of the connection `req` came on, when its listener made one (an HTTP/2 request's); undefined otherwise: read its socket. */
export function clientNoteOf(req: object): ClientNote | undefined {
  return (req as Holder)[kClientNote]
}

/**
 * The client's address, read while its socket is open: once the socket closes it has none (a
 * client that sends an upgrade and leaves at once), and X-Forwarded-For and the access log
 * would read `undefined`.
 */
export function peerOf(socket: { remoteAddress?: string | undefined }): string {
  return socket.remoteAddress ?? '-'
}

/** Request headers for an upstream request, as the engine copies them in. */
export type Headers = Record<string, string | string[]>

/**
 * The headers every try of `req` sends upstream, made once per request (a ClientRequest
 * validates each setHeader and removeHeader call, and a retry would do them all again):
 * - no hop-by-hop headers, nor those `Connection` names (but never `Content-Length` or `Host`:
 *   see FRAMING); no `Expect`, which Node has already
 *   answered with 100 Continue, and which left in would make the upstream request send its
 *   head the moment it is created, before its path is set;
 * - a chunked request is sent chunked even for DELETE and OPTIONS, for which Node would send
 *   no framing at all (and http-proxy `Content-Length: 0` and then the body), desyncing a
 *   kept-alive upstream connection;
 * - the peer appended to `X-Forwarded-For`, and `X-Forwarded-Proto` and `X-Forwarded-Host`
 *   set, overwriting the client's (http-proxy's `xfwd` keeps theirs).
 * `tls`: whether the request came over TLS (a TLS socket, or an HTTP/2 stream's proxy socket,
 * which answers for its connection, has `encrypted`); the exchange knows it already.
 * The client's `Host` passes unchanged. With no `Connection` header, Node's keep-alive agent
 * sends `Connection: keep-alive` itself. `req.headers` is left as the client sent it, for the
 * hash policy and the access log.
 */
export function forwardedHeaders(req: IncomingMessage, chunked: boolean, peer: string, tls = 'encrypted' in req.socket): Headers {
  const from = req.headers
  const named = connectionTokens(from.connection)
  const headers: Headers = {}
  for (const name in from) {
    if (HOP_BY_HOP.has(name) || (named.has(name) && !FRAMING.has(name)) || name === 'expect') continue
    headers[name] = from[name] as string | string[]
  }
  if (chunked) {
    delete headers['content-length']
    headers['transfer-encoding'] = 'chunked'
  }
  const prior = from['x-forwarded-for']
  headers['x-forwarded-for'] = prior === undefined || prior === '' ? peer : `${prior}, ${peer}`
  headers['x-forwarded-proto'] = tls ? 'https' : 'http'
  if (from.host === undefined) delete headers['x-forwarded-host']
  else headers['x-forwarded-host'] = from.host
  return headers
}

/**
 * Gives an upstream request http-proxy has already built the headers `forwardedHeaders`
 * makes, with the client's address read when the upgrade came (`peer`: the socket may have
 * closed since, and then has none), for WebSocket upgrades (whose `Connection` and `Upgrade` the tunnel sets again).
 */
export function prepareRequestHeaders(out: ClientRequest, req: IncomingMessage, peer: string): void {
  const headers = forwardedHeaders(req, false, peer)
  for (const name of out.getHeaderNames()) if (!(name in headers)) out.removeHeader(name)
  for (const name in headers) out.setHeader(name, headers[name] as string | string[])
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
    if (HOP_BY_HOP.has(lower) || (named.has(lower) && !FRAMING.has(lower))) continue
    out.push(name, raw[i + 1] as string)
  }
  return out
}

/**
 * Bytes Node's ServerResponse refuses in a reason phrase (its `checkInvalidHeaderChar`), though
 * its parser accepts them from an upstream: `200 O\x01K` used to throw out of writeHead and
 * take the process down.
 */
const BAD_REASON = /[^\t\x20-\x7e\x80-\xff]/

/** The upstream's reason phrase, or the standard one for `status` when it holds bytes that may not be sent on (nginx sends its own always). */
export function reasonPhrase(status: number, message: string): string | undefined {
  return BAD_REASON.test(message) ? STATUS_CODES[status] : message
}
