import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BodyAccount } from './body-budget.js'
import { BodyBudgetError, BodyTooLargeError } from './errors.js'
import { helloResponse, helloVariant } from './hello.js'
import { SessionStore, sessionResponse } from './sessions.js'
import { liveJson, pathOf, text, type BufferedResponse, type Handler } from './response.js'
import type { RequestStats } from './stats.js'

/**
 * Opens the request's account against the backend's body budget. The server releases it when
 * the response is done, since an echoed body is held until then.
 */
export type OpenBodyAccount = () => BodyAccount

/** What the router decided for a request. */
export interface RouteMatch {
  /** Whether the response goes through the response cache (which still refuses what it may not store). */
  cached: boolean
  /**
   * The representation chosen from the request's headers, for a route whose answer varies
   * (`Vary`); '' when it does not. The response cache keys each apart.
   */
  variant: string
  handle: Handler
}

/** What the routes need from the server they run in. */
export interface RouteContext {
  /** The backend's id, read per request (it may depend on the port it listens on). */
  id: () => string
  /** Milliseconds, for uptime. */
  clock: () => number
  /** Counts shown by `GET /stats`. */
  stats: RequestStats
  /** Whether `GET /stats` is served; without it the path is unknown (404). */
  exposeStats: boolean
  /** Most bytes `/echo` buffers. */
  maxBodyBytes: number
  /** The bound on body bytes held by all requests at once, for the 503's words. */
  maxBodyBytesTotal: number
}

interface Route {
  /** The methods served; GET routes serve HEAD too (Node leaves out the body). */
  methods: readonly string[]
  cached: boolean
  /** The representation a request gets, when the route has more than one. */
  variant?: (req: IncomingMessage) => string
  handle: (req: IncomingMessage, query: URLSearchParams, body: OpenBodyAccount) => Promise<BufferedResponse>
}

const GET = ['GET', 'HEAD'] as const
const ECHO = ['POST', 'PUT', 'DELETE', 'PATCH'] as const
/** `/slow` bounds, in ms: long enough to show a slow upstream, short enough not to tie one up. */
const SLOW_DEFAULT_MS = 500
const SLOW_MAX_MS = 10_000

/**
 * Reads a request body into one buffer, at most `limit` bytes, counting each chunk against
 * `account`. Past the limit it rejects with `BodyTooLargeError`, and when the budget of all
 * requests is spent with `BodyBudgetError`; either way it gives its bytes back and discards
 * the rest, so a 413 or 503 can still be written. A client that goes away mid-body rejects
 * with Node's `aborted` error, and gives its bytes back too.
 */
export function readBody(req: IncomingMessage, limit: number, account: BodyAccount): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const fail = (err: Error): void => {
      req.off('data', onData)
      req.resume()
      account.release()
      reject(err)
    }
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > limit) return fail(new BodyTooLargeError(`request body is over ${limit} bytes`))
      if (!account.take(chunk.length)) return fail(new BodyBudgetError())
      chunks.push(chunk)
    }
    req.on('data', onData)
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', fail)
  })
}

/** The routes, by path. */
function routes(ctx: RouteContext): Map<string, Route> {
  const startedAt = ctx.clock()
  // Each backend counts its own sessions, with the default bounds (10,000 sessions, 30 min idle).
  const sessions = new SessionStore({ clock: ctx.clock })
  const table = new Map<string, Route>([
    [
      '/',
      {
        methods: GET,
        cached: true,
        variant: helloVariant,
        // Run on a miss only: the variant, computed again here, is the one the cache keyed.
        handle: async req => helloResponse(helloVariant(req), ctx.id()),
      },
    ],
    [
      '/slow',
      {
        methods: GET,
        cached: true,
        handle: async (_req, query) => {
          const raw = query.get('ms') ?? String(SLOW_DEFAULT_MS)
          if (!/^\d{1,5}$/.test(raw) || Number(raw) > SLOW_MAX_MS) {
            return text(400, `ms: ${JSON.stringify(raw)} is not a whole number from 0 to ${SLOW_MAX_MS}`)
          }
          await sleep(Number(raw))
          return text(200, `Slow response after ${Number(raw)} ms from ${ctx.id()}`)
        },
      },
    ],
    [
      '/healthz',
      {
        methods: GET,
        cached: false,
        handle: async () =>
          liveJson({ status: 'ok', id: ctx.id(), uptimeSeconds: Math.floor((ctx.clock() - startedAt) / 1000) }),
      },
    ],
    // Per client and sets a cookie: it must never reach the response cache, not even as a BYPASS.
    ['/session', { methods: GET, cached: false, handle: async req => sessionResponse(req, sessions, ctx.id()) }],
    [
      '/echo',
      {
        methods: ECHO,
        cached: false,
        handle: async (req, _query, open) => {
          let body: Buffer
          try {
            body = await readBody(req, ctx.maxBodyBytes, open())
          } catch (err) {
            // The client stops sending after a 413 or 503 only if the connection ends.
            if (err instanceof BodyTooLargeError) return text(413, err.message, { connection: 'close' })
            if (err instanceof BodyBudgetError) {
              const line = `Service Unavailable: request bodies held at once would pass ${ctx.maxBodyBytesTotal} bytes; try again later`
              return text(503, line, { connection: 'close' })
            }
            // Nobody reads this one: the client is gone. It exists for the access log.
            return text(400, `request body incomplete: ${(err as Error).message}`)
          }
          return {
            status: 200,
            headers: {
              'content-type': req.headers['content-type'] ?? 'application/octet-stream',
              'cache-control': 'no-store',
              'x-echo-method': req.method as string,
              'x-echo-bytes': String(body.length),
              'x-echo-sha256': createHash('sha256').update(body).digest('hex'),
            },
            body,
          }
        },
      },
    ],
  ])
  // Off by default: the keys are every client's paths, tokens in them included.
  if (ctx.exposeStats) {
    table.set('/stats', { methods: GET, cached: false, handle: async () => liveJson({ id: ctx.id(), requests: ctx.stats }) })
  }
  return table
}

/** Maps a request to its route; answers 404 for an unknown path and 405 for a method a route does not serve. */
export class Router {
  readonly #routes: Map<string, Route>

  constructor(ctx: RouteContext) {
    this.#routes = routes(ctx)
  }

  route(req: IncomingMessage, body: OpenBodyAccount): RouteMatch {
    const target = req.url as string
    const path = pathOf(target)
    const route = this.#routes.get(path)
    if (route === undefined) {
      return { cached: true, variant: '', handle: async () => text(404, `Not Found: no route for ${path}`) }
    }
    if (!route.methods.includes(req.method as string)) {
      const allow = route.methods.join(', ')
      return {
        cached: route.cached,
        variant: '',
        handle: async () => text(405, `Method Not Allowed: ${path} answers ${allow}`, { allow }),
      }
    }
    const query = new URLSearchParams(target.slice(path.length + 1))
    return { cached: route.cached, variant: route.variant?.(req) ?? '', handle: () => route.handle(req, query, body) }
  }
}
