// The admin API's upstream routes (GET/POST /upstreams, POST /upstreams/<id>/state, DELETE /upstreams/<id>), HTTP side.
/**
 * The admin API's upstream routes: `GET /upstreams`, `POST /upstreams/<id>/state`, `POST
 * /upstreams`, `DELETE /upstreams/<id>`, HAProxy's runtime API (`set server state`, `add server`,
 * `del server`) over HTTP, as Envoy's and Caddy's admin APIs are. This file speaks HTTP; what a
 * change does is the `UpstreamControl`'s, implemented by the balancer (or a cluster's primary).
 */
import type { IncomingMessage } from 'node:http'
import { parseAdminState, type AdminState } from '../upstreams/admin-state.js'
import { credentialsOf, type AdminAuth } from './auth.js'

/** What a change came to: the upstream's new object, or why not, as a status and one line. */
export type Outcome<T> = { ok: true; upstream: T } | { ok: false; status: 400 | 404 | 409 | 500; message: string }

/** The runtime control the routes drive. Each method resolves once the change is in force everywhere (every worker). */
export interface UpstreamControl<T> {
  /** Every upstream's object, as `/status.json` lists them. */
  list(): Promise<T[]>
  /** Sets an upstream's admin state; 404 for an unknown id. */
  setState(id: string, state: AdminState): Promise<Outcome<T>>
  /** Adds an upstream from an `--upstream` line or a config-file object; 400 for a bad one, 409 for one that exists. */
  add(spec: unknown): Promise<Outcome<T | T[]>>
  /** Drains an upstream and removes it once its requests finish; 404 for an unknown id. */
  remove(id: string): Promise<Outcome<T>>
}

/** An answer for the admin listener to send. */
export interface Answer {
  status: number
  /** JSON for objects, text for strings (one line, ending in a newline). */
  body: unknown
  headers?: Record<string, string>
}

/** The largest request body read: an upstream line or object is a few hundred bytes. */
export const MAX_BODY = 64 * 1024

const text = (status: number, message: string, headers?: Record<string, string>): Answer => ({ status, body: `${message}\n`, headers })

/** A body that could not be taken, as its answer. */
class BodyError extends Error {
  constructor(readonly answer: Answer) {
    super(String(answer.body))
  }
}

/** Reads a JSON body of at most `MAX_BODY` bytes. */
async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > MAX_BODY)
      throw new BodyError(text(413, `413 Content Too Large: the body is over ${MAX_BODY} bytes`, { connection: 'close' }))
    chunks.push(chunk)
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'))
  } catch (err) {
    throw new BodyError(text(400, `400 Bad Request: the body is not JSON (${(err as Error).message})`))
  }
}

/** `<id>` from the path: `host:port`, URL-encoded or not; undefined when its encoding is broken. */
function idOf(encoded: string): string | undefined {
  try {
    return decodeURIComponent(encoded)
  } catch {
    return undefined
  }
}

const answer = <T>(o: Outcome<T | T[]>, status: number): Answer => (o.ok ? { status, body: o.upstream } : text(o.status, o.message))

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

/**
 * Answers a request under `/upstreams`; undefined for any other path, which is the caller's.
 * A state-changing call passes `auth` before its body is read, so a caller without the token
 * cannot make the listener read anything.
 */
export async function routeUpstreams<T>(
  req: IncomingMessage,
  path: string,
  control: UpstreamControl<T>,
  auth: AdminAuth,
): Promise<Answer | undefined> {
  const m = /^\/upstreams(?:\/([^/]+)(\/state)?)?\/?$/.exec(path)
  if (m === null) return undefined
  const [, encoded, state] = m
  const allow = encoded === undefined ? 'GET, HEAD, POST' : state === undefined ? 'DELETE' : 'POST'
  const method = req.method as string
  if (!allow.split(', ').includes(method)) return text(405, `405 Method Not Allowed: ${path} takes ${allow}`, { allow })
  if (method === 'GET' || method === 'HEAD') return { status: 200, body: await control.list() }
  const refused = auth.check(credentialsOf(req, `${method} ${path}`))
  if (refused !== undefined) return text(refused.status, refused.message, refused.headers)
  const id = encoded === undefined ? undefined : idOf(encoded)
  if (encoded !== undefined && id === undefined)
    return text(400, `400 Bad Request: ${JSON.stringify(encoded)} is not a URL-encoded host:port`)
  if (method === 'DELETE') return answer(await control.remove(id as string), 202)
  let body: unknown
  try {
    body = await readJson(req)
  } catch (err) {
    if (err instanceof BodyError) return err.answer
    throw err
  }
  if (state !== undefined) {
    const wanted = isObject(body) ? body.state : undefined
    let to: AdminState
    try {
      to = parseAdminState(wanted, 'state')
    } catch (err) {
      return text(400, `400 Bad Request: ${(err as Error).message}; send {"state": "drain"}, "maint" or "ready"`)
    }
    return answer(await control.setState(id as string, to), 200)
  }
  // `{"upstream": "<line>"}`, or the config file's object itself.
  const spec = isObject(body) && Object.keys(body).length === 1 && 'upstream' in body ? body.upstream : body
  return answer(await control.add(spec), 201)
}
