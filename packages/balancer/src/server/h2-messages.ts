// HTTP/2 requests and responses shaped as the HTTP/1.1 messages http-proxy and the forward path know: no pseudo-headers in, no connection headers out.
import { EventEmitter } from 'node:events'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'
import type { ServerHttp2Stream } from 'node:http2'
import { ignoreError } from '../errors.js'
import { clientNoteOf, kClientNote, setTlsVersion, type ClientNote } from '../forward/headers.js'
import { resetStream } from './h2-session.js'

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

/** An event listener, as a stream takes it. */
type Listener = Parameters<EventEmitter['on']>[1]

/**
 * What an HTTP/2 request's `socket` answers, for the code that reads a request's connection:
 * its client's address and TLS version from the note its listener made on the session, and
 * `destroyed` from the request's own stream (a reset stream is a client gone, as a closed
 * HTTP/1.1 connection is). Made only when read: the forward path reads the note instead.
 */
class StreamSocket {
  readonly encrypted = true
  readonly remoteAddress: string | undefined
  readonly #stream: ServerHttp2Stream

  constructor(stream: ServerHttp2Stream, note: ClientNote | undefined) {
    this.#stream = stream
    this.remoteAddress = note?.peer
    setTlsVersion(this, note?.tlsVersion)
  }

  get destroyed(): boolean {
    return this.#stream.destroyed
  }
}

/**
 * An HTTP/2 request as the forward path, the policies and http-proxy read an IncomingMessage:
 * `headers` and `rawHeaders` as HTTP/1.1's (requestHeadersFromH2, no pseudo-header), `method`
 * and `url` from `:method` and `:path`, `httpVersion` `2.0` (as the access log shows it). Its
 * body is its stream's readable side: `on`, `pipe` and the rest are the stream's.
 *
 * Why not Node's compat `Http2ServerRequest` (with its `Http2ServerResponse`): it is a Readable
 * of its own, fed from the stream, with seven listeners on the stream, two on itself, a closure
 * for its timeout and a Proxy for a socket, per request, and its response five listeners and a
 * closure more. Node's bare http2 pipe runs 326k instructions per request over the compat API
 * and 266k over the stream alone; Switchyard's h2 path went from 375k to 310k with this class
 * (callgrind, docs/performance.md). It holds the stream and reads what is asked of it.
 */
export class H2Request {
  readonly stream: ServerHttp2Stream
  /** The headers as the HTTP/2 stream carried them, pseudo-headers included. */
  readonly h2Headers: IncomingHttpHeaders
  readonly method: string
  /** Assignable, as on an IncomingMessage. */
  url: string
  readonly #raw: string[]
  #h1: IncomingHttpHeaders | undefined
  #socket: StreamSocket | undefined

  constructor(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]) {
    this.stream = stream
    this.h2Headers = headers
    this.#raw = rawHeaders
    this.method = headers[':method'] as string
    this.url = (headers[':path'] as string | undefined) ?? ''
  }

  get httpVersion(): string {
    return '2.0'
  }
  get httpVersionMajor(): number {
    return 2
  }
  get httpVersionMinor(): number {
    return 0
  }

  /** As an HTTP/1.1 request's; assignable, as on an IncomingMessage. */
  get headers(): IncomingHttpHeaders {
    // A body unless the HEADERS frame ended the stream (END_STREAM): HTTP/2 says so up front.
    this.#h1 ??= requestHeadersFromH2(this.h2Headers, this.#raw, !this.stream.endAfterHeaders)
    return this.#h1
  }
  set headers(value: IncomingHttpHeaders) {
    this.#h1 = value
  }

  get rawHeaders(): string[] {
    return flatten(this.headers)
  }

  /**
   * What the listener noted of this request's connection (forward/headers.ts noteClient), found
   * on its session; undefined once the stream is gone, and the forward path reads the socket.
   */
  get [kClientNote](): ClientNote | undefined {
    const session = this.stream.session
    return session === undefined ? undefined : clientNoteOf(session)
  }

  get socket(): StreamSocket {
    this.#socket ??= new StreamSocket(this.stream, this[kClientNote])
    return this.#socket
  }

  /** The whole body was read, or the stream is gone. */
  get complete(): boolean {
    const stream = this.stream
    return stream.readableEnded || stream.destroyed
  }

  on(event: string, listener: Listener): this {
    this.stream.on(event, listener)
    return this
  }
  once(event: string, listener: Listener): this {
    this.stream.once(event, listener)
    return this
  }
  pipe<T extends NodeJS.WritableStream>(destination: T): T {
    return this.stream.pipe(destination)
  }
  unpipe(destination?: NodeJS.WritableStream): this {
    this.stream.unpipe(destination)
    return this
  }
  resume(): this {
    this.stream.resume()
    return this
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

/** The response of a stream, for the shared listeners below. */
const kResponse = Symbol('switchyard.h2Response')
type Tagged = ServerHttp2Stream & { [kResponse]: H2Response }

/**
 * An HTTP/2 response as the forward path writes a ServerResponse: `writeHead` takes what an
 * HTTP/1.1 ServerResponse takes, a reason phrase and a flat header list included, and passes on
 * only what HTTP/2 can carry: no reason phrase (HTTP/2 has none), no connection-specific header
 * (Node would throw out of the handler). A draining balancer's `Connection: close` becomes
 * nothing here: the listener sends GOAWAY instead. The head goes out with `writeHead`, in one
 * `respond()` on the stream, as Node's compat response sends it; Node adds `Date`.
 *
 * Its events are 'close' (the stream closed: the response was sent, or the client reset it)
 * and 'drain', passed on from the stream by two shared listeners. Past its close, writing is a
 * no-op, as on Node's compat response: a client gone is not an error to throw.
 */
export class H2Response extends EventEmitter {
  readonly stream: ServerHttp2Stream
  statusCode = 200
  /** Headers set before the head is written (setHeader), lower-case names. */
  #set: OutgoingHttpHeaders | undefined
  #ended = false

  constructor(stream: ServerHttp2Stream) {
    super()
    this.stream = stream
    ;(stream as Tagged)[kResponse] = this
    stream.on('drain', onStreamDrain)
    stream.on('close', onStreamClose)
    // A client's RST_STREAM with an error code, or a write to a stream it reset, is an 'error'
    // on the stream; with no listener it would take the process down. The 'close' that follows
    // is what the forward path acts on.
    stream.on('error', ignoreError)
  }

  get headersSent(): boolean {
    return this.stream.headersSent
  }
  /**
   * Whether the whole response was written, as on a ServerResponse: the balancer ended it and
   * the stream took it all. A stream the client reset reads false, so the forward path aborts
   * the upstream request and logs 499.
   */
  get writableFinished(): boolean {
    return this.#ended && this.stream.writableFinished
  }
  /** Whether the client has not taken what was written yet: the forward path holds the upstream read timer while it is so. */
  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain
  }
  get destroyed(): boolean {
    return this.stream.destroyed
  }

  setHeader(name: string, value: OutgoingHttpHeaders[string]): this {
    ;(this.#set ??= {})[name.toLowerCase()] = value
    return this
  }

  writeHead(statusCode: number, headers?: ResponseHeaders): this
  writeHead(statusCode: number, statusMessage: string, headers?: ResponseHeaders): this
  writeHead(statusCode: number, reasonOrHeaders?: string | ResponseHeaders, headers?: ResponseHeaders): this {
    this.statusCode = statusCode
    const stream = this.stream
    // The client is gone: nothing to send, and respond() would throw.
    if (stream.destroyed || stream.closed) return this
    const out = responseHeadersForH2(typeof reasonOrHeaders === 'string' ? headers : reasonOrHeaders)
    const set = this.#set
    // As on a ServerResponse, what writeHead is given wins over what setHeader set.
    if (set !== undefined) for (const name in set) if (out[name] === undefined && set[name] !== undefined) out[name] = set[name]
    out[':status'] = statusCode
    // Throws on what HTTP/2 cannot send (a status outside 200-599, two Content-Type values):
    // the forward path takes that as an invalid upstream response.
    stream.respond(out)
    return this
  }

  /**
   * Writes body bytes, the head first if it is not out. False when the client is not taking
   * them yet ('drain' follows) or is gone ('close' follows). Bytes for a response HTTP/2 sends
   * without a body (HEAD, 204, 304: respond() ended the stream) are dropped.
   */
  write(chunk: string | Uint8Array, encoding?: BufferEncoding): boolean {
    const stream = this.stream
    if (this.#ended || stream.destroyed || stream.closed) return false
    if (!stream.headersSent) this.writeHead(this.statusCode)
    if (stream.writableEnded) return true
    return encoding === undefined ? stream.write(chunk) : stream.write(chunk, encoding)
  }

  /** Ends the response, with its last bytes if given; a second call does nothing. */
  end(chunk?: string | Uint8Array, encoding?: BufferEncoding): this {
    if (this.#ended) return this
    this.#ended = true
    const stream = this.stream
    if (stream.destroyed || stream.closed) return this
    if (!stream.headersSent) this.writeHead(this.statusCode)
    if (stream.writableEnded) return this
    if (chunk === undefined) stream.end()
    else if (encoding === undefined) stream.end(chunk)
    else stream.end(chunk, encoding)
    return this
  }

  /** Resets the stream (resetStream): a response cut short reaches the client as one. */
  destroy(): this {
    resetStream(this.stream)
    return this
  }
}

function onStreamDrain(this: Tagged): void {
  this[kResponse].emit('drain')
}

function onStreamClose(this: Tagged): void {
  this[kResponse].emit('close')
}

/**
 * The request and response of a new stream, as the listener hands them on (the 'stream' event
 * of Node's HTTP/2 server: its headers object and raw list).
 */
export function h2Messages(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): [H2Request, H2Response] {
  return [new H2Request(stream, headers, rawHeaders), new H2Response(stream)]
}
