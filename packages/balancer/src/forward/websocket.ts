// The balancer's 'upgrade' handler: which upgrades are tunnelled, which are answered, and the open tunnels a drain waits for.
import { STATUS_CODES, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import { ignoreError } from '../errors.js'
import { answerRaw } from '../server/answers.js'
import { answerDue, hasBody, refusal } from '../server/requests.js'
import type { ForwardContext } from './context.js'
import { Tunnel, type TunnelOwner } from './tunnel.js'

/**
 * Proxies WebSocket upgrades. The engine does the handshake and pipes the frames; each Tunnel
 * adds what it lacks: failover on a refused or timed-out connection, 502 / 503 / 504 on the raw
 * socket, passive health, the in-flight count, and closing each side when the other goes,
 * which http-proxy leaves undone on a reset (node-http-proxy #559, #1510: one leaked
 * descriptor per dropped WebSocket).
 */
export class WebSocketProxy implements TunnelOwner {
  readonly forwarder: ForwardContext
  /** Every upgraded client socket not closed yet, handshake or open tunnel. */
  readonly tunnels = new Set<Tunnel>()
  #waiters: (() => void)[] = []

  constructor(forwarder: ForwardContext) {
    this.forwarder = forwarder
  }

  upgrade = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    // Node removes its own listeners from an upgraded socket, its error listener included.
    socket.on('error', ignoreError)
    // Once the balancer has written all it will (an error answered, or the upstream's end
    // passed on), close the socket: left to allowHalfOpen, a client that never closes its
    // side would hold the descriptor forever.
    socket.once('finish', () => socket.destroy())
    // Pipelined behind a response not written yet: nothing written now could be read in order,
    // so a client that pipelines an upgrade is cut off.
    if (answerDue(socket)) {
      socket.destroy()
      return
    }
    const refused = refusal(req)
    if (refused !== undefined) {
      answerRaw(socket, `${refused.status} ${STATUS_CODES[refused.status]}`, refused.message)
      return
    }
    // RFC 6455 §4.1: the handshake is a GET without a body. One with a body would reach the
    // upstream with its framing but without its bytes, which go to the tunnel after the 101.
    if (hasBody(req)) {
      answerRaw(socket, '400 Bad Request', '400 Bad Request: an upgrade request cannot carry a body')
      return
    }
    // A tunnel opened now would hold the shutdown up for as long as it lasts; the client is
    // told to go elsewhere, as a request is told with Connection: close.
    if (this.forwarder.draining) {
      answerRaw(socket, '503 Service Unavailable', '503 Service Unavailable: the balancer is shutting down')
      return
    }
    // Node 20 hands every Upgrade to this listener (there is no way to decline one and serve
    // the request as plain HTTP), and http-proxy's ws pass drops anything but a WebSocket.
    if (req.method !== 'GET' || String(req.headers.upgrade).toLowerCase() !== 'websocket') {
      answerRaw(socket, '501 Not Implemented', '501 Not Implemented: only WebSocket upgrades (GET, Upgrade: websocket) are proxied')
      return
    }
    const tunnel = new Tunnel(this, req, socket, head)
    this.tunnels.add(tunnel)
    tunnel.next()
  }

  /** Resolves once no tunnel is open. */
  drained(): Promise<void> {
    if (this.tunnels.size === 0) return Promise.resolve()
    return new Promise(resolve => this.#waiters.push(resolve))
  }

  /** Cuts every open tunnel (at the drain timeout). */
  closeAll(): void {
    for (const tunnel of this.tunnels) tunnel.client.destroy()
  }

  /** Called by a tunnel once its client socket is closed. */
  closed(tunnel: Tunnel): void {
    this.tunnels.delete(tunnel)
    if (this.tunnels.size > 0) return
    for (const resolve of this.#waiters.splice(0)) resolve()
  }
}
