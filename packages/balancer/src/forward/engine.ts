// The one file that knows http-proxy: it builds and sends upstream requests and WebSocket handshakes behind the Engine interface.
import { Agent, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { Agent as TlsAgent } from 'node:https'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import httpProxy from 'http-proxy'
import httpIncoming, { type StreamOptions } from 'http-proxy/lib/http-proxy/passes/web-incoming.js'
import { ignoreError } from '../errors.js'
import type { Headers } from './headers.js'

/** Where an upstream is, as the engine connects to it: prepared once per upstream, not parsed per request. */
export interface Target {
  /** `https:`: http-proxy sends the request with https.request, through the upstream's TLS agent. */
  protocol: 'http:' | 'https:'
  host: string
  hostname: string
  port: number
}

/** Told about one upstream request (an Attempt). */
export interface RequestSink {
  /**
   * The upstream request is built, and nothing of it is sent yet: called synchronously, inside
   * `send`, for every request. The sink adds its listeners and writes (or later streams) the body.
   */
  requestBuilt(out: ClientRequest): void
}

/** Told about one WebSocket handshake (a Tunnel). */
export interface UpgradeSink {
  /** The upstream request is built, its head not written yet: the last moment to set its headers. */
  requestBuilt(out: ClientRequest): void
  /** The upstream answered 101: the engine writes that to the client and pipes both ways from now on. */
  upgraded(): void
  /** The upstream answered anything else: the sink answers the client itself. */
  answered(res: IncomingMessage): void
  /** The upstream request or, once open, the upstream socket failed; the engine ends the client socket. */
  failed(err: Error): void
}

/** What the balancer needs of a proxy engine: one call per upstream request, one per WebSocket handshake. */
export interface Engine {
  /**
   * Sends `req` to `target` through `agent` with `headers` (which replace the client's for the
   * upstream request only). The engine reads no body: `sink.requestBuilt` gets the request.
   * Errors reach the listeners the sink adds to it; none is thrown.
   */
  send(req: IncomingMessage, res: ServerResponse, target: Target, agent: Agent, headers: Headers, sink: RequestSink): void
  /** Sends the handshake `req` to `target` over `conn`, already connected, and tunnels `client` to it on a 101. */
  upgrade(req: IncomingMessage, client: Duplex, target: Target, conn: Socket, sink: UpgradeSink): void
}

/**
 * http-proxy's own pass that builds the upstream request, sends it and reports the response.
 * Called directly rather than through `proxy.web()`, which per request copies its options,
 * looks for string targets to parse, and runs three passes that do nothing here (no `xfwd`, no
 * `timeout`; deleteLength's rewrite is the one forwardedHeaders undoes).
 *
 * What this and the other changes of that commit bought (shared listeners instead of closures
 * in Attempt and Exchange, headers built once per request, the cached Connection split), with
 * `npm run bench:instructions` (callgrind, 20,000 warm-up requests, median of the last three
 * counts of 2,000, 2026-11-28): 304k -> 285k user-space instructions per request, where stock
 * http-proxy with a keep-alive agent takes 316k in the same run. In CPU time the change is
 * below this shared machine's noise (±15% between rounds).
 */
const stream = httpIncoming.stream

/**
 * What http-proxy pipes into the upstream request in place of the client request (its
 * `buffer` option): `pipe(out)` is called right after the request is built, which hands it to
 * the sink synchronously, for every request (http-proxy's `proxyReq` event waits for a socket
 * and never fires when the request carries `Expect`), and lets the sink read the body only
 * once the upstream connection is open (http-proxy would pipe it at once, so a POST to a
 * refused upstream would lose it).
 */
class Handoff {
  readonly #path: string
  readonly #sink: RequestSink

  constructor(path: string, sink: RequestSink) {
    this.#path = path
    this.#sink = sink
  }

  pipe<T extends NodeJS.WritableStream>(destination: T): T {
    // http-proxy only ever pipes its buffer into the upstream ClientRequest.
    const out = destination as unknown as ClientRequest
    // Byte-identical path and query: http-proxy's urlJoin collapses `//` (and is skipped).
    out.path = this.#path
    this.#sink.requestBuilt(out)
    return destination
  }
}

/**
 * An agent that hands its one request the upstream connection the tunnel already opened.
 * The tunnel connects first because http-proxy's ws pass ends the client socket on any
 * upstream error: a refused or timed-out connection must be retried before http-proxy sees
 * the request. Not keep-alive: after a non-101 answer the agent destroys the connection.
 */
class OpenedAgent extends Agent {
  readonly #socket: Socket
  constructor(socket: Socket) {
    super()
    this.#socket = socket
  }
  override createConnection(): Duplex {
    return this.#socket
  }
}

/** The same for a TLS upstream: http-proxy sends its handshake with https.request, which takes only an https Agent. */
class OpenedTlsAgent extends TlsAgent {
  readonly #socket: Socket
  constructor(socket: Socket) {
    super()
    this.#socket = socket
  }
  override createConnection(): Duplex {
    return this.#socket
  }
}

const NO_HEAD = Buffer.alloc(0)

/**
 * Keys http-proxy's `setupOutgoing` assigns on every request whatever their value: eight TLS and
 * socket settings copied from the target and `localAddress` from the options. Here all nine are
 * always undefined: a Target has none of them (an upstream's TLS settings live in its agent, see
 * upstreams/tls.ts) and the engine passes no localAddress. Left as plain keys, each would land
 * in the upstream request's options as an own key set to undefined, and Node's http client
 * copies every own key twice per request, into null-prototype objects (ClientRequest's options,
 * then Agent.addRequest's), where each key costs a dictionary insert: 16 keys where a bare
 * `http.request` hands over 7.
 */
const UNSET_KEYS = ['socketPath', 'pfx', 'key', 'passphrase', 'cert', 'ca', 'ciphers', 'secureProtocol', 'localAddress'] as const

/**
 * The object http-proxy fills in for each upstream request (its `ssl` option), one per target
 * protocol, made once and reused. Reuse is safe: `setupOutgoing` assigns every key it fills in
 * on every request of one protocol (host, hostname, port, method, headers, agent, path, and
 * rejectUnauthorized for https), and `http.request` copies the object before it returns, within
 * the same synchronous call; nothing keeps it.
 *
 * The nine keys above are its own properties from the start, writable but not enumerable: the
 * assignment of each is a store to a field the object already has, and Node's copies (which
 * take enumerable keys only) leave them out. The earlier way, a prototype with a setter per
 * key on a new object per request, kept them out too, but every one of the nine stores then
 * called a setter through http-proxy's one keyed store site, which cost more than the copies
 * saved: `setupOutgoing` and Node's two copies took 32,600 instructions per call that way,
 * 29,400 on a new plain object, 23,700 this way (callgrind, docs/performance.md). A value other
 * than undefined in one of the nine would not reach Node: the Target type carries none of them
 * and the engine passes no localAddress.
 */
function reusedOptions(): Record<string, unknown> {
  const options: Record<string, unknown> = {}
  for (const key of UNSET_KEYS) Object.defineProperty(options, key, { value: undefined, writable: true, enumerable: false })
  return options
}
const OUTGOING = { 'http:': reusedOptions(), 'https:': reusedOptions() }

/** The options object http-proxy fills in for a request to an upstream over `protocol` (see reusedOptions). */
export function outgoingOptions(protocol: Target['protocol']): Record<string, unknown> {
  return OUTGOING[protocol]
}

/** The engine on http-proxy: its web pass for requests, its ws pass for WebSocket handshakes. */
class HttpProxyEngine implements Engine {
  /**
   * The server whose events http-proxy's stream pass emits ('start', 'proxyReq', 'proxyRes',
   * 'end'); its options are unused, since each request passes its own.
   */
  readonly #web = httpProxy.createProxyServer({})
  /** Its own instance, so that its events are only ever about upgrades. */
  readonly #ws = httpProxy.createProxyServer({ toProxy: true, prependPath: false })
  readonly #upgrades = new WeakMap<IncomingMessage, UpgradeSink>()
  /** The upstream request of the handshake being sent, between 'proxyReqWs' and the end of `upgrade`. */
  #built: ClientRequest | undefined

  constructor() {
    // Every call passes a callback, so http-proxy emits no 'error'; this is in case it ever does.
    this.#ws.on('error', ignoreError)
    // Fires inside ws(), before the request head is written and before http-proxy adds its own
    // listeners: the sink's 'upgrade' listener runs before http-proxy's.
    this.#ws.on('proxyReqWs', (out: ClientRequest, req: IncomingMessage) => {
      const sink = this.#upgrades.get(req) as UpgradeSink
      // Byte-identical path and query: http-proxy's urlJoin collapses `//`.
      out.path = req.url as string
      this.#built = out
      sink.requestBuilt(out)
      out.once('upgrade', () => sink.upgraded())
    })
  }

  send(req: IncomingMessage, res: ServerResponse, target: Target, agent: Agent, headers: Headers, sink: RequestSink): void {
    const options: StreamOptions = {
      target,
      agent,
      buffer: new Handoff(req.url as string, sink),
      selfHandleResponse: true,
      // The handoff sets the path as the client sent it; http-proxy would join and re-parse it.
      ignorePath: true,
      prependPath: false,
      // setupOutgoing would url.parse() the client's URL for every request before ignorePath
      // drops it; with toProxy it takes the string as it is (its only use in the web pass).
      toProxy: true,
      ssl: outgoingOptions(target.protocol),
    }
    // http-proxy copies `req.headers` into the upstream request: hand it `headers` for that
    // moment only, and the client's stay as they came (hash keys, access log). Errors reach the
    // sink through its own listener on the upstream request; the callback keeps http-proxy from
    // rethrowing them (its best-known crash).
    const own = req.headers
    req.headers = headers as IncomingMessage['headers']
    try {
      stream(req, res, options, undefined, this.#web, ignoreError)
    } finally {
      req.headers = own
    }
  }

  upgrade(req: IncomingMessage, client: Duplex, target: Target, conn: Socket, sink: UpgradeSink): void {
    this.#upgrades.set(req, sink)
    const agent = target.protocol === 'https:' ? new OpenedTlsAgent(conn) : new OpenedAgent(conn)
    this.#ws.ws(req, client, NO_HEAD, { target, agent }, (err: Error) => sink.failed(err))
    // http-proxy has built the request and added its listeners by now (ws() runs its passes
    // synchronously). Its 'response' listener would pass on any status, reason phrase and
    // version, write the header bytes as UTF-8 and copy `Transfer-Encoding: chunked` over the
    // de-chunked body it pipes: the sink answers instead.
    const out = this.#built as ClientRequest
    this.#built = undefined
    out.removeAllListeners('response').once('response', (res: IncomingMessage) => sink.answered(res))
  }
}

/** The engine the balancer runs on: http-proxy. */
export function createEngine(): Engine {
  return new HttpProxyEngine()
}
