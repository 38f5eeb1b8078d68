// The admin listener: the dashboard, /status.json, /metrics and /events, on a port of its own.
import { Server, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Registry } from 'prom-client'
import { AllowedHosts } from './allowed-hosts.js'
import { AdminAuth, credentialsOf } from './auth.js'
import { routeUpstreams, type UpstreamControl } from './upstreams-api.js'
import { DASHBOARD_CSP, renderDashboard } from './dashboard.js'
import { createMetrics } from '../observe/metrics.js'
import { buildStatus, processCounts, type StatusSnapshot } from '../observe/status.js'
import type { PurgeTarget } from '../cache/edge-cache.js'
import { parsePurge } from '../cache/purge.js'
import type { BalancerView, CacheControl } from '../observe/view.js'

/** Where the admin listener gets its figures: this process, or every worker added up. */
export interface AdminSource {
  status(): Promise<StatusSnapshot>
  /** Prometheus text exposition. */
  metrics(): Promise<string>
  /** The exposition's content type. */
  readonly contentType: string
  /**
   * Empties what `target` names from the edge cache, of every worker, before it resolves: the
   * responses removed, or undefined when the cache is off. Absent: the listener has no cache to purge.
   */
  purge?(target: PurgeTarget): Promise<number | undefined>
}

/** The figures of one balancer process. */
export function localSource(balancer: BalancerView & Partial<CacheControl>): AdminSource {
  const registry: Registry = createMetrics(balancer)
  return {
    status: () => Promise.resolve(buildStatus(balancer, processCounts(balancer))),
    metrics: () => registry.metrics(),
    contentType: registry.contentType,
    purge: target => Promise.resolve(balancer.purgeCache?.(target)),
  }
}

/** Options of `createAdmin`. */
export interface AdminOptions {
  /** Time between two `/events` messages, in ms. Default 1000. */
  interval?: number
  /**
   * The address it is told to bind (`--admin-host`), so that a Host naming it, with the listener's
   * port, is answered. Default: none; the loopback names and the connection's own address still are.
   */
  host?: string
  /** More names a request's Host may carry (`--admin-allowed-host`): `NAME` for any port, `NAME:PORT`. Default none. */
  allowedHosts?: readonly string[]
  /** The gate for state-changing calls. Default: no token, so every such call gets 403. */
  auth?: AdminAuth
  /** What the upstream routes change (`/upstreams`). Default: none, and those paths get 404. */
  control?: UpstreamControl<unknown>
}

const TEXT = 'text/plain; charset=utf-8'

/**
 * On every answer: no MIME sniffing, so no text or JSON answer is ever run as a script or a page;
 * no Referer, so admin URLs do not leak to links; and a CSP that lets nothing but the dashboard
 * (which has its own) load or frame anything, should an answer be opened as a document.
 */
const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy': "default-src 'none'; frame-ancestors 'none'",
}

/**
 * The admin listener: the dashboard (`/`), `/status.json`, `/metrics` and `/events`. It is a
 * server of its own, on its own port, as HAProxy's `stats` frontend and Envoy's admin port
 * are: no application path can collide with it, and nothing internal is on the public port.
 * It binds wherever it is told; the CLI's default is 127.0.0.1.
 */
export class AdminServer extends Server {
  readonly #source: AdminSource
  readonly #interval: number
  readonly #host: string | undefined
  #hosts: AllowedHosts
  /** Open `/events` streams. */
  readonly #streams = new Set<ServerResponse>()
  #timer: NodeJS.Timeout | undefined
  /** The one gate every state-changing route passes (`auth.check`); see `authorize()`. */
  readonly auth: AdminAuth
  readonly #control: UpstreamControl<unknown> | undefined

  /** @throws ConfigError for an `allowedHosts` value that is not a host. */
  constructor(source: AdminSource, options: AdminOptions = {}) {
    // A missing Host is ours to answer (421, with the headers below), not Node's bare 400.
    super({ requireHostHeader: false })
    this.#source = source
    this.#interval = options.interval ?? 1000
    this.#host = options.host
    this.#hosts = new AllowedHosts(options.host, options.allowedHosts)
    this.auth = options.auth ?? new AdminAuth(undefined)
    this.#control = options.control
    this.on('request', (req: IncomingMessage, res: ServerResponse) => {
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) res.setHeader(name, value)
      this.#route(req, res).catch((err: Error) => this.#send(res, 500, TEXT, `500 Internal Server Error: ${err.message}\n`))
    })
  }

  /**
   * Replaces the `allowedHosts`, as a reload does; requests from then on are checked against them.
   * @throws ConfigError for a value that is not a host, and keeps the ones it had.
   */
  allowHosts(names: readonly string[]): void {
    this.#hosts = new AllowedHosts(this.#host, names)
  }

  /** Stops listening, and ends the event streams, which never end on their own: close() would wait for ever. */
  override close(callback?: (err?: Error) => void): this {
    for (const res of this.#streams) res.destroy()
    return super.close(callback)
  }

  async #route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const refused = this.#hosts.refusal(hostHeaders(req), req.httpVersion, {
      address: req.socket.localAddress as string,
      port: req.socket.localPort as number,
    })
    if (refused !== undefined) {
      this.#send(res, 421, TEXT, `421 Misdirected Request: ${refused}\n`, req)
      return
    }
    const url = req.url as string
    const q = url.indexOf('?')
    const path = q < 0 ? url : url.slice(0, q)
    // All after the first `?`: an unencoded `url=/page?id=1` keeps its own query.
    const search = q < 0 ? '' : url.slice(q + 1)
    if (path === '/cache') {
      if (req.method !== 'DELETE') {
        res.setHeader('Allow', 'DELETE')
        this.#send(res, 405, TEXT, '405 Method Not Allowed: /cache answers DELETE (a purge)\n', req)
      } else if (this.authorize(req, res)) await this.#purge(res, search)
      return
    }
    const api = this.#control === undefined ? undefined : await routeUpstreams(req, path, this.#control, this.auth)
    if (api !== undefined) {
      const json = typeof api.body !== 'string'
      for (const [name, value] of Object.entries(api.headers ?? {})) res.setHeader(name, value)
      this.#send(
        res,
        api.status,
        json ? 'application/json' : TEXT,
        json ? `${JSON.stringify(api.body, null, 2)}\n` : (api.body as string),
        req,
      )
      return
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD')
      this.#send(res, 405, TEXT, '405 Method Not Allowed: the admin listener only answers GET\n')
      return
    }
    if (path === '/') {
      const html = renderDashboard(await this.#source.status())
      res.setHeader('content-security-policy', DASHBOARD_CSP)
      this.#send(res, 200, 'text/html; charset=utf-8', html, req)
    } else if (path === '/status.json') {
      this.#send(res, 200, 'application/json', `${JSON.stringify(await this.#source.status(), null, 2)}\n`, req)
    } else if (path === '/metrics') {
      this.#send(res, 200, this.#source.contentType, await this.#source.metrics(), req)
    } else if (path === '/events') {
      // HEAD: the stream's head alone; Node would send nothing until end().
      if (req.method === 'HEAD') res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }).end()
      else this.#subscribe(res)
    } else {
      this.#send(res, 404, TEXT, '404 Not Found: try /, /status.json, /metrics or /events\n')
    }
  }

  /**
   * The gate for a state-changing route: true when the request carries the admin token; else it
   * has been answered (403 without a token configured, 401 with a challenge) and the route stops.
   * Any route that changes state starts with `if (!admin.authorize(req, res)) return`.
   */
  authorize(req: IncomingMessage, res: ServerResponse): boolean {
    const refused = this.auth.check(credentialsOf(req, `${req.method} ${req.url}`))
    if (refused === undefined) return true
    for (const [name, value] of Object.entries(refused.headers)) res.setHeader(name, value)
    this.#send(res, refused.status, TEXT, `${refused.message}\n`, req)
    return false
  }

  /** `DELETE /cache[?url=…|?prefix=…]`: 200 with the count removed, once every worker has purged. */
  async #purge(res: ServerResponse, search: string): Promise<void> {
    const target = parsePurge(search)
    if (typeof target === 'string') {
      this.#send(res, 400, TEXT, `400 Bad Request: ${target}\n`)
      return
    }
    const purged = await this.#source.purge?.(target)
    if (purged === undefined) this.#send(res, 404, TEXT, '404 Not Found: the edge cache is off (start with --cache SIZE)\n')
    else this.#send(res, 200, 'application/json', `${JSON.stringify({ purged })}\n`)
  }

  #send(res: ServerResponse, status: number, type: string, body: string, req?: IncomingMessage): void {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' })
    res.end(req?.method === 'HEAD' ? undefined : body)
  }

  /** Server-Sent Events: a full snapshot at once, then one per interval, to every stream. */
  #subscribe(res: ServerResponse): void {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' })
    // The browser's EventSource reconnects after `retry` ms when the balancer goes away.
    res.write('retry: 2000\n\n')
    this.#streams.add(res)
    res.once('close', () => {
      this.#streams.delete(res)
      if (this.#streams.size === 0) {
        clearInterval(this.#timer)
        this.#timer = undefined
      }
    })
    void this.#push([res])
    this.#timer ??= setInterval(() => void this.#push(this.#streams), this.#interval)
  }

  /**
   * Sends a snapshot to `to`. Without figures, those streams end, so that the page shows the
   * connection lost rather than old figures as live, and EventSource comes back after `retry`.
   */
  async #push(to: Iterable<ServerResponse>): Promise<void> {
    let message: string
    try {
      message = `data: ${JSON.stringify(await this.#source.status())}\n\n`
    } catch {
      for (const res of to) res.end()
      return
    }
    for (const res of to) res.write(message)
  }
}

/** Every `Host` header of a request: Node keeps only the first in `headers`. */
function hostHeaders(req: IncomingMessage): string[] {
  const values: string[] = []
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if ((req.rawHeaders[i] as string).toLowerCase() === 'host') values.push(req.rawHeaders[i + 1] as string)
  }
  return values
}

/** Creates the admin listener for a balancer in this process; not listening yet. */
export function createAdmin(balancer: BalancerView, options: AdminOptions = {}): AdminServer {
  return new AdminServer(localSource(balancer), options)
}
