import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { WebSocketServer, type RawData, type WebSocket } from 'ws'
import { pathOf } from './response.js'

/** The path of the WebSocket echo endpoint. */
export const WS_PATH = '/ws'

/**
 * Close code sent to open WebSockets when the backend shuts down: 1001 "going away", the
 * code RFC 6455 §7.4.1 gives to a server going down, so clients know to reconnect.
 */
const GOING_AWAY = 1001

/**
 * For errors that only mean a peer went away or broke the protocol: 'close' follows and
 * cleans up. Without a listener an emitter throws, and the process would die.
 */
function ignoreError(): void {}

/** Writes a short text/plain response on an upgraded socket and closes it. */
function refuse(socket: Duplex, status: string, message: string): void {
  const body = `${message}\n`
  // allowHalfOpen keeps a server socket open after end() until the client ends too;
  // destroying it once the answer is flushed frees the descriptor (as `ws` does).
  socket.once('finish', () => socket.destroy())
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  )
}

/** Options of `WebSocketEcho`. Required: the default lives in `BackendOptions.wsMaxMessage` (1 MiB). */
export interface WebSocketEchoOptions {
  /** Largest message taken, in bytes, fragments added up. No default. */
  maxMessage: number
}

/**
 * The `/ws` endpoint: a WebSocket that sends every message back as it came, text as text and
 * binary as binary. It takes the backend's 'upgrade' events; an upgrade on any other path
 * gets 404, and `ws` answers a malformed handshake on `/ws` itself (400, or 405 for not GET).
 */
export class WebSocketEcho {
  readonly #wss: WebSocketServer

  constructor(options: WebSocketEchoOptions) {
    // ws stops reading a message once its frames pass maxPayload, and closes with 1009:
    // an echo holds a message twice (in and out), so the bound is what one client may pin.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessage })
    this.#wss.on('connection', (ws: WebSocket) => {
      // `ws` emits 'error' for a frame that breaks the protocol, then closes with 1002; for a
      // message over maxPayload, with 1009.
      ws.on('error', ignoreError)
      ws.on('message', (data: RawData, isBinary: boolean) => ws.send(data, { binary: isBinary }))
    })
  }

  /** The open WebSockets. */
  get clients(): ReadonlySet<WebSocket> {
    return this.#wss.clients
  }

  /** The backend's 'upgrade' listener. */
  upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node removes its own listeners from an upgraded socket.
    socket.on('error', ignoreError)
    if (pathOf(req.url as string) !== WS_PATH) {
      refuse(socket, '404 Not Found', `404 Not Found: WebSocket upgrades are served on ${WS_PATH} only`)
      return
    }
    this.#wss.handleUpgrade(req, socket, head, ws => this.#wss.emit('connection', ws, req))
  }

  /**
   * Starts the closing handshake on every open WebSocket. Node's `server.close()` waits for
   * upgraded sockets too, so without this a backend with a client connected never closes.
   */
  close(): void {
    for (const ws of this.#wss.clients) ws.close(GOING_AWAY, 'server shutting down')
  }
}
