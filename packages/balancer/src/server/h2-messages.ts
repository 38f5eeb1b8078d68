// HTTP/2 requests and responses shaped as the HTTP/1.1 messages http-proxy and the forward path know: no pseudo-headers in, no connection headers out.
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { clientNoteOf, kClientNote, type ClientNote } from '../forward/headers.js'

/**
 * Header fields HTTP/2 forbids in a message (RFC 9113 §8.2.2): they describe one HTTP/1.1
 * connection. Node's compat layer throws ERR_HTTP2_INVALID_CONNECTION_HEADERS on every one of
 * them (and on `te` other than `trailers`), and an upstream speaking HTTP/1.1 sends them freely.
 */
const CONNECTION_SPECIFIC = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'te',
])

/**
 * The request headers of an HTTP/2 stream as an HTTP/1.1 request carries them, for http-proxy
 * (which copies every header it is given into the upstream request, pseudo-headers included):
 * - no pseudo-headers (`:method`, `:path`, `:scheme`, `:authority`);
 * - `Host` from `:authority` (RFC 9113 §8.3.1: a server uses `:authority` over `Host`);
 * - a body without `Content-Length` gets `Transfer-Encoding: chunked`: HTTP/2 frames a body by
 *   its DATA frames, HTTP/1.1 needs one of the two, and without it the forward path would read
 *   the request as having no body at all.
 * Node has already joined repeated `cookie` fields with `; ` (RFC 9113 §8.2.3) and folded
 * other repeats as it does for HTTP/1.1.
 */
export function requestHeadersFromH2(h2: IncomingHttpHeaders, raw: readonly string[], hasBody: boolean): IncomingHttpHeaders {
  const headers: IncomingHttpHeaders = {}
  // The names in the order they came, from the flat list Node read them into: a `for…in` over
  // Node's header object, which has no prototype and so is a dictionary in V8, lists and sorts
  // its keys anew each time (0.7-0.85 µs against 0.3 µs for this, for a request of seven
  // fields, in a pinned micro-benchmark). The values are the object's, repeats already folded;
  // a repeated name stores the same value again.
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string
    if (name.charCodeAt(0) !== 58 /* : */) headers[name] = h2[name]
  }
  // Pseudo-headers come once each: nghttp2 resets a stream that repeats one.
  const authority = h2[':authority'] as string | undefined
  if (authority !== undefined) headers.host = authority
  if (hasBody && headers['content-length'] === undefined) headers['transfer-encoding'] = 'chunked'
  return headers
}

/** The same headers as a flat `[name, value, …]` list, as `rawHeaders` holds them. */
function flatten(headers: IncomingHttpHeaders): string[] {
  const raw: string[] = []
  for (const name in headers) {
    const value = headers[name] as string | string[]
    if (Array.isArray(value)) for (const v of value) raw.push(name, v)
    else raw.push(name, value)
  }
  return raw
}

/**
 * Why an HTTP/2 request must not be forwarded, beyond what nghttp2 already refuses: it resets
 * a stream with connection headers, `Transfer-Encoding`, a missing, empty or repeated
 * pseudo-header, no host at all, two `Host` fields, a `:path` that is neither a path nor `*`
 * for OPTIONS, or a body longer or shorter than its `Content-Length`, before any handler sees
 * it; and Node hands CONNECT to the server's 'connect' listener. What is left: a `Host` naming
 * another host than `:authority`. RFC 9113 §8.3.1 says to treat that as malformed, and the
 * upstream would read one host where the balancer read the other. Undefined: forward it.
 */
export function h2Refusal(req: H2Request): string | undefined {
  const h2 = req.h2Headers
  const authority = h2[':authority'] as string | undefined
  const host = h2.host as string | undefined
  if (authority === undefined || host === undefined || host.toLowerCase() === authority.toLowerCase()) return undefined
  return '400 Bad Request: the Host header names another host than :authority'
}

/** Node's own getters, which the subclass below shadows. */
function baseGetter<T>(proto: object, name: string): (this: object) => T {
  return (Object.getOwnPropertyDescriptor(proto, name) as { get: (this: object) => T }).get
}
const h2HeadersOf = baseGetter<IncomingHttpHeaders>(Http2ServerRequest.prototype, 'headers')
const h2RawHeadersOf = baseGetter<string[]>(Http2ServerRequest.prototype, 'rawHeaders')

/**
 * The request class of the HTTP/2 server (its `Http2ServerRequest` option): `headers` and
 * `rawHeaders` read as an HTTP/1.1 request's (requestHeadersFromH2), so that the forward path,
 * the policies and http-proxy see no pseudo-header. `url`, `method` and `httpVersion` (`2.0`,
 * as the access log shows it) are Node's. `headers` may be assigned, as on an IncomingMessage.
 */
export class H2Request extends Http2ServerRequest {
  #h1: IncomingHttpHeaders | undefined
  /** Assignable, as on an IncomingMessage (an accessor: see the static block). */
  declare headers: IncomingHttpHeaders

  /** The headers as the HTTP/2 stream carried them, pseudo-headers included. */
  get h2Headers(): IncomingHttpHeaders {
    return h2HeadersOf.call(this)
  }

  /**
   * What the listener noted of this request's connection (forward/headers.ts noteClient), found
   * on its session; undefined once the stream is gone, and the forward path reads the socket.
   */
  get [kClientNote](): ClientNote | undefined {
    const session = this.stream.session
    return session === undefined ? undefined : clientNoteOf(session)
  }

  static {
    // Accessors over what @types/node declares as plain properties: TypeScript allows no
    // `override get headers()` there, and this is what such an override compiles to.
    Object.defineProperty(this.prototype, 'headers', {
      get(this: H2Request): IncomingHttpHeaders {
        // A body unless the HEADERS frame ended the stream (END_STREAM): HTTP/2 says so up front.
        this.#h1 ??= requestHeadersFromH2(this.h2Headers, h2RawHeadersOf.call(this), !this.stream.endAfterHeaders)
        return this.#h1
      },
      set(this: H2Request, value: IncomingHttpHeaders) {
        this.#h1 = value
      },
      configurable: true,
    })
    Object.defineProperty(this.prototype, 'rawHeaders', {
      get(this: H2Request): string[] {
        return flatten(this.headers)
      },
      configurable: true,
    })
  }
}

/** Response headers as the forward path hands them over: an object, or `[name, value, …]` as `rawHeaders` holds them. */
export type ResponseHeaders = OutgoingHttpHeaders | readonly string[]

/**
 * Response headers fit for HTTP/2: lower-case names (HTTP/2 requires them, RFC 9113 §8.2.1),
 * no connection-specific field, and repeats (Set-Cookie) kept as one field with several values.
 * Names a `Connection` field lists are already gone (the forward path's responseHeaders).
 */
export function responseHeadersForH2(given: ResponseHeaders | undefined): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {}
  if (given === undefined) return out
  if (isList(given)) for (let i = 0; i < given.length; i += 2) addH2Header(out, given[i] as string, given[i + 1] as string)
  else for (const name in given) addH2Header(out, name, given[name])
  return out
}

/** One field into `out` (responseHeadersForH2): a function of its own rather than a closure made per response. */
function addH2Header(out: OutgoingHttpHeaders, name: string, value: OutgoingHttpHeaders[string]): void {
  const lower = name.toLowerCase()
  if (CONNECTION_SPECIFIC.has(lower) || value === undefined) return
  const prior = out[lower]
  if (prior === undefined) out[lower] = value
  else out[lower] = [...(Array.isArray(prior) ? prior : [String(prior)]), ...(Array.isArray(value) ? value : [String(value)])]
}

function isList(headers: ResponseHeaders): headers is readonly string[] {
  return Array.isArray(headers)
}

/**
 * The response class of the HTTP/2 server (its `Http2ServerResponse` option). `writeHead`
 * takes what an HTTP/1.1 ServerResponse takes, a reason phrase and a flat header list included,
 * and passes on only what HTTP/2 can carry: no reason phrase (HTTP/2 has none, and Node warns
 * on one), no connection-specific header (Node would throw out of the handler). A draining
 * balancer's `Connection: close` becomes nothing here: the listener sends GOAWAY instead.
 */
export class H2Response extends Http2ServerResponse<H2Request> {
  override writeHead(statusCode: number, headers?: ResponseHeaders): this
  override writeHead(statusCode: number, statusMessage: string, headers?: ResponseHeaders): this
  override writeHead(statusCode: number, reasonOrHeaders?: string | ResponseHeaders, headers?: ResponseHeaders): this {
    return super.writeHead(statusCode, responseHeadersForH2(typeof reasonOrHeaders === 'string' ? headers : reasonOrHeaders))
  }

  static {
    // Whether the client has not taken what was written yet, as on a ServerResponse: the
    // forward path holds the upstream read timer while it is so. The compat response inherits
    // Writable's, which reads a buffer it never uses (every write goes to the stream): always
    // false. An accessor for the reason given in H2Request.
    // Whether the whole response was written, as on a ServerResponse. Node's compat response
    // reads its stream's, which a client's RST_STREAM also ends: a reset stream would read as a
    // response sent in full, and the forward path would neither abort the upstream request nor
    // log 499. It is finished only if the balancer ended it.
    Object.defineProperty(this.prototype, 'writableFinished', {
      get(this: H2Response): boolean {
        return this.writableEnded && this.stream.writableFinished
      },
      configurable: true,
    })
    Object.defineProperty(this.prototype, 'writableNeedDrain', {
      get(this: H2Response): boolean {
        return this.stream.writableNeedDrain
      },
      configurable: true,
    })
  }
}
