// The HTTPS listener: TLS with SNI, then HTTP/2 or HTTP/1.1 by ALPN, each handed to the balancer's handlers.
import { EventEmitter, once } from 'node:events'
import {
  createServer as createH2Server,
  type Http2Server,
  type IncomingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2'
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import type { CertificateStore, CertificateReload } from './certificate-store.js'
import type { TlsVersion } from './certificates.js'
import { h2Messages, h2Refusal, type H2Request, type H2Response } from './h2-messages.js'
import { watchSession, type H2SessionLimits, type SessionAbuse } from './h2-session.js'
import { SERVER_OPTIONS } from './listener.js'
import { noteClient, noteTlsVersion } from '../forward/headers.js'

/** The protocols a TLS connection may speak, as ALPN names them and the metrics label them. */
export type TlsProtocol = 'h2' | 'http/1.1'

/** What the listener hands requests to. */
export interface TlsListenerHandlers {
  /**
   * Sets up the HTTPS server's HTTP/1.1 side as the plain listener sets up its own: 'request',
   * 'upgrade' (WebSockets over wss://), 'connect', 'clientError', header and keep-alive timeouts.
   * An https.Server is an http.Server over TLS, so it takes the same.
   */
  setupHttp1(server: HttpsServer): void
  /** An HTTP/2 request, shaped as HTTP/1.1 (h2-messages.ts), to forward. */
  request(req: H2Request, res: H2Response): void
  /** An HTTP/2 request the balancer answers itself with a short text (405 CONNECT, 400 Host, 417 Expect). */
  refuse(req: H2Request, res: H2Response, status: 400 | 405 | 417, message: string): void
  /** One line per connection closed for abuse. */
  log(line: string): void
}

/** Options of `TlsListener`. Durations in ms. */
export interface TlsListenerOptions {
  certificates: CertificateStore
  /** Offer h2 by ALPN, with HTTP/1.1 as the fallback. */
  http2: boolean
  minVersion: TlsVersion
  /** Time for the TLS handshake (nginx `ssl_handshake_timeout`; the balancer passes its header timeout). */
  handshakeTimeout: number
  /** HTTP/2 connection limits. */
  h2: H2SessionLimits
  /**
   * Largest header block an HTTP/2 request may send (SETTINGS_MAX_HEADER_LIST_SIZE): HTTP/1.1's
   * 16 KB, so that neither protocol lets through what the other refuses.
   */
  maxHeaderListSize: number
}

const CONNECT_REFUSAL = '405 Method Not Allowed: CONNECT is not supported: this is a reverse proxy, not a forward proxy'
const EXPECTATION_REFUSAL = '417 Expectation Failed: only 100-continue is understood'

/**
 * An HTTPS listener. One TLS server does the handshake (SNI from the CertificateStore, ALPN);
 * then a connection that chose `h2` goes to an HTTP/2 server, and any other to the https.Server's
 * own HTTP/1.1 code, as nginx's `listen 443 ssl http2` does.
 *
 * Why an https.Server with HTTP/2 on the side, rather than Node's http2.createSecureServer with
 * `allowHTTP1`: HTTP/1.1 over TLS then runs the very code the plain listener runs, an
 * http.Server's, with every setting the balancer gives it (requireHostHeader, header and
 * keep-alive timeouts, the connections check) and its 'upgrade' and 'connect' events: WebSockets
 * over wss:// work as over ws://. The HTTP/2 server's HTTP/1.1 fallback is a partial http.Server
 * whose timeouts and options differ. And it costs nothing per request: the dispatch is one test
 * of the ALPN result per connection, where `allowHTTP1` makes the same test.
 */
export class TlsListener extends EventEmitter {
  readonly https: HttpsServer
  readonly h2: Http2Server
  readonly #certificates: CertificateStore
  readonly #minVersion: TlsVersion
  readonly #handlers: TlsListenerHandlers
  readonly #sessions = new Set<ServerHttp2Session>()
  /** Connections past their handshake, until they close. */
  readonly #sockets = new Set<TLSSocket>()
  /** Open connections by protocol, after the handshake. */
  readonly open: Record<TlsProtocol, number> = { h2: 0, 'http/1.1': 0 }
  /** Connections accepted since start, by protocol. */
  readonly total: Record<TlsProtocol, number> = { h2: 0, 'http/1.1': 0 }

  constructor(handlers: TlsListenerHandlers, options: TlsListenerOptions) {
    super()
    this.#certificates = options.certificates
    this.#minVersion = options.minVersion
    this.#handlers = handlers
    const { cert, key } = options.certificates.default.pem
    this.https = createHttpsServer({
      ...SERVER_OPTIONS,
      cert,
      key,
      minVersion: options.minVersion,
      SNICallback: options.certificates.SNICallback,
      ALPNProtocols: options.http2 ? ['h2', 'http/1.1'] : ['http/1.1'],
      handshakeTimeout: options.handshakeTimeout,
    })
    handlers.setupHttp1(this.https)
    this.h2 = createH2Server({
      settings: { maxConcurrentStreams: options.h2.maxStreams, maxHeaderListSize: options.maxHeaderListSize },
    })
    // Node's core API, the stream itself, not its compat layer's request and response objects
    // (h2-messages.ts says why). No 'request' listener may be added to this server: the first
    // one makes Node build those objects for every stream as well.
    this.h2.on('stream', this.#onStream)
    this.h2.on('session', session => this.#onSession(session, options.h2))
    // The https.Server's own listener runs its HTTP/1.1 code on every connection: it is kept, and
    // called only for those that did not choose h2.
    const [http1] = this.https.listeners('secureConnection') as ((socket: TLSSocket) => void)[]
    this.https.removeAllListeners('secureConnection')
    this.https.on('secureConnection', (socket: TLSSocket) => {
      const protocol: TlsProtocol = socket.alpnProtocol === 'h2' ? 'h2' : 'http/1.1'
      noteTlsVersion(socket)
      this.open[protocol]++
      this.total[protocol]++
      this.#sockets.add(socket)
      socket.once('close', () => {
        this.open[protocol]--
        this.#sockets.delete(socket)
      })
      this.emit('connection', socket, protocol)
      if (protocol === 'h2') this.h2.emit('connection', socket)
      else (http1 as (socket: TLSSocket) => void).call(this.https, socket)
    })
  }

  /** Starts listening; `done` once bound. 'error' (EADDRINUSE, EACCES) is the https.Server's. */
  listen(port: number, host: string | undefined, done?: () => void): this {
    this.https.listen(port, host, done)
    return this
  }

  address(): AddressInfo {
    return this.https.address() as AddressInfo
  }

  /**
   * Reads the certificate files again (SIGHUP) and swaps them in for new handshakes: the SNI
   * contexts, and the default certificate, which `setSecureContext` replaces. Connections open
   * now keep theirs; a pair that does not read keeps its old certificate (CertificateStore).
   */
  reloadCertificates(): CertificateReload {
    const result = this.#certificates.reload()
    const { cert, key } = this.#certificates.default.pem
    this.https.setSecureContext({ cert, key, minVersion: this.#minVersion })
    return result
  }

  /**
   * Stops accepting. HTTP/2 connections get GOAWAY and close once their streams are done (what
   * `Connection: close` is to HTTP/1.1, which the forward path sends while draining); idle
   * HTTP/1.1 connections close now. Resolves once every connection is gone.
   */
  async close(): Promise<void> {
    const closed = new Promise<void>(resolve => this.https.close(() => resolve()))
    for (const session of this.#sessions) session.close()
    this.https.closeIdleConnections()
    await closed
    // The server counts a connection gone when its socket is destroyed, a tick before the
    // socket's 'close', which `open` counts.
    await Promise.all([...this.#sockets].map(socket => once(socket, 'close')))
  }

  /** Cuts every connection still open (the drain timeout ran out). */
  closeAll(): void {
    for (const session of this.#sessions) session.destroy()
    this.https.closeAllConnections()
  }

  #onSession(session: ServerHttp2Session, limits: H2SessionLimits): void {
    // Its TLS version was noted on the socket at 'secureConnection', just before: read through
    // the session's socket proxy once here, rather than through a stream's on every request.
    noteClient(session, session.socket)
    this.#sessions.add(session)
    session.once('close', () => this.#sessions.delete(session))
    watchSession(session, limits, this.#onAbuse)
  }

  #onAbuse = (abuse: SessionAbuse): void => {
    this.#handlers.log(
      `h2 connection from ${abuse.address} closed: ${abuse.resets} streams reset within the allowance (rapid reset, CVE-2023-44487)`,
    )
  }

  #onStream = (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]): void => {
    const [req, res] = h2Messages(stream, headers, rawHeaders)
    // What Node's compat layer would do before its 'request': CONNECT (a tunnel, which nghttp2
    // lets through with only :authority) is refused; `Expect: 100-continue` is answered at once,
    // as the HTTP/1.1 listener answers it, and any other expectation is refused (RFC 9110 §10.1.1).
    if (req.method === 'CONNECT') return this.#handlers.refuse(req, res, 405, CONNECT_REFUSAL)
    const expect = headers.expect
    if (expect !== undefined) {
      if (expect.toLowerCase() !== '100-continue') return this.#handlers.refuse(req, res, 417, EXPECTATION_REFUSAL)
      stream.additionalHeaders({ ':status': 100 })
    }
    const refused = h2Refusal(req)
    if (refused === undefined) this.#handlers.request(req, res)
    else this.#handlers.refuse(req, res, 400, refused)
  }
}
