import { createHash } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BodyAccount } from './body-budget.js'
import { BodyBudgetError, BodyTooLargeError } from './errors.js'
import { helloResponse, helloVariant } from './hello.js'
import { getJob, JOBS_PATH, postJob } from './jobs/route.js'
import type { JobQueue, JobType } from './jobs/types.js'
import { readBody } from './read-body.js'
import { liveJson, pathOf, text, type BufferedResponse, type Handler } from './response.js'
import { sessionResponse } from './sessions/route.js'
import type { SessionStore } from './sessions/store.js'
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
  /** Where `/session` counts visits. */
  sessions: SessionStore
  /** Where `/jobs` queues jobs and reads them back. */
  jobs: JobQueue
  /** The job types `POST /jobs` takes. */
  jobTypes: Readonly<Record<string, JobType>>
  /** What `/healthz` adds about Redis: `{redis: 'up' | 'down'}`, or nothing without Redis. */
  redis: () => { redis: 'up' | 'down' } | undefined
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

/** The routes, by path. */
function routes(ctx: RouteContext): Map<string, Route> {
  const startedAt = ctx.clock()
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
        // Redis down is "degraded" with 200, not a failure: the routes that do not need Redis
        // still answer, so the balancer should keep this backend in rotation.
        handle: async () => {
          const redis = ctx.redis()
          const status = redis?.redis === 'down' ? 'degraded' : 'ok'
          return liveJson({ status, ...redis, id: ctx.id(), uptimeSeconds: Math.floor((ctx.clock() - startedAt) / 1000) })
        },
      },
    ],
    // Per client and sets a cookie: it must never reach the response cache, not even as a BYPASS.
    ['/session', { methods: GET, cached: false, handle: req => sessionResponse(req, ctx.sessions, ctx.id()) }],
    [
      JOBS_PATH,
      {
        methods: ['POST'],
        cached: false,
        handle: (req, _query, open) => postJob(req, open(), ctx.jobs, ctx.jobTypes, ctx.maxBodyBytesTotal),
      },
    ],
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
  /** `GET /jobs/<id>`: the one route whose path holds a parameter. */
  readonly #job: Route

  constructor(ctx: RouteContext) {
    this.#routes = routes(ctx)
    this.#job = { methods: GET, cached: false, handle: req => getJob(pathOf(req.url as string).slice(JOBS_PATH.length + 1), ctx.jobs) }
  }

  route(req: IncomingMessage, body: OpenBodyAccount): RouteMatch {
    const target = req.url as string
    const path = pathOf(target)
    const route = this.#routes.get(path) ?? (path.startsWith(`${JOBS_PATH}/`) ? this.#job : undefined)
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
