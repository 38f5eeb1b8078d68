// A plain-HTTP listener: a node:http server handed the balancer's handlers; it counts connections, refuses CONNECT and what Node's parser refuses.
import { Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import { ignoreError } from '../errors.js'
import { answerRaw, rawHead } from './answers.js'
import { answerDue } from './requests.js'

/** What a listener hands every request and upgrade to: the balancer's handlers, the same for every listener. */
export interface Handlers {
  request(req: IncomingMessage, res: ServerResponse): void
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void
}

/** The client-side timeouts of a listener, in ms. */
export interface ListenerTimeouts {
  /** Time for a client to send its whole header block; then 408. */
  clientHeaderTimeout: number
  /** How long an idle client connection is kept (nginx `keepalive_timeout`). */
  keepAliveTimeout: number
}

/** Client connections, across every listener of a balancer. */
export class Connections {
  /** Open now. */
  open = 0
  /** Accepted since start. */
  total = 0
  readonly #onChange: (open: number) => void

  /** @param onChange told the number of open connections whenever it changes. */
  constructor(onChange: (open: number) => void) {
    this.#onChange = onChange
  }

  /** Counts a connection a listener accepted, until it closes. */
  track = (socket: Duplex): void => {
    this.open++
    this.total++
    this.#onChange(this.open)
    socket.once('close', this.#closed)
  }

  #closed = (): void => {
    this.open--
    this.#onChange(this.open)
  }
}

/** The methods the balancer forwards, as listed in its 405 for CONNECT. */
const ALLOW = 'GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH'

/**
 * Answers CONNECT with 405: a reverse proxy is not a tunnel. Without a 'connect' listener
 * Node drops the socket without a word.
 */
function refuseConnect(_req: IncomingMessage, socket: Duplex): void {
  socket.on('error', ignoreError)
  // Pipelined behind a response not written yet: an answer now would be read as that one's.
  if (answerDue(socket)) {
    socket.destroy()
    return
  }
  // The server's sockets allow half-open connections: once the answer is written, destroy
  // the socket, or a client that never closes its side would hold it.
  const message = 'CONNECT is not supported: this is a reverse proxy, not a forward proxy'
  answerRaw(socket, '405 Method Not Allowed', message, `Allow: ${ALLOW}\r\n`, () => socket.destroy())
}

/** Node's own refusals, by its error code: with a text body like the balancer's other answers. */
const CLIENT_ERRORS: Record<string, [string, string]> = {
  HPE_HEADER_OVERFLOW: ['431 Request Header Fields Too Large', 'the request headers are larger than 16 KB'],
  ERR_HTTP_REQUEST_TIMEOUT: ['408 Request Timeout', 'the request headers did not arrive in time'],
}

/**
 * Answers a request Node's parser refused (its `clientError`): the status Node would send
 * (400, or 431 and 408), but with a one-line text body naming the problem, as the balancer's
 * other answers have, and then the connection closes. Nothing is written once a response is
 * under way on the connection (pipelining), and a socket the client reset is just closed.
 */
function refuseMalformed(err: NodeJS.ErrnoException, socket: Duplex): void {
  // Node's own test for the same (`_httpMessage` is the response being written, if any).
  const busy = (socket as Duplex & { _httpMessage?: { headersSent: boolean } | null })._httpMessage?.headersSent === true
  if (socket.writable && !busy) {
    const [status, why] = CLIENT_ERRORS[String(err.code)] ?? ['400 Bad Request', `the request is malformed (${String(err.code)})`]
    const body = `${status}: ${why}\n`
    // The answer to a HEAD has no body, and the parser stopped before it could say whether
    // this was one: any HEAD in the bytes it was reading, and the body is left out.
    const packet = (err as NodeJS.ErrnoException & { rawPacket?: Buffer }).rawPacket
    const head = packet === undefined || /(^|\n)HEAD /.test(packet.toString('latin1'))
    socket.write(rawHead(status, Buffer.byteLength(body)) + (head ? '' : body))
  }
  socket.destroy()
}

/**
 * A plain-HTTP listener, not listening yet: requests and upgrades go to `handlers`, and each
 * connection is counted in `connections`. Another kind of listener (TLS, HTTP/2) is another
 * such function, handed the same handlers.
 */
export function createListener(handlers: Handlers, connections: Connections, timeouts: ListenerTimeouts): Server {
  // requestTimeout 0: no cap on a whole request, so a slow 1 GB upload still works; the
  // body is bounded between reads instead (clientBodyTimeout). Node checks these timeouts
  // every connectionsCheckingInterval (30 s by default), so check every second for them
  // to hold to within a second. (On Node 20.20 headersTimeout holds with requestTimeout 0.)
  // requireHostHeader off: refusal() checks the Host itself, and closes the connection.
  const server = new Server({ requestTimeout: 0, connectionsCheckingInterval: 1000, requireHostHeader: false })
  applyTimeouts(server, timeouts)
  server.on('request', handlers.request)
  server.on('connection', connections.track)
  server.on('upgrade', handlers.upgrade)
  server.on('connect', refuseConnect)
  server.on('clientError', refuseMalformed)
  return server
}

/** Applies the client-side timeouts to a listener: at its creation, and again on reload. */
export function applyTimeouts(server: Server, timeouts: ListenerTimeouts): void {
  server.headersTimeout = timeouts.clientHeaderTimeout
  server.keepAliveTimeout = timeouts.keepAliveTimeout
}
