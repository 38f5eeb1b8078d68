/**
 * The response types every route and both caches share. A leaf file: it imports nothing of
 * the backend, so `routes.ts` can import the routes that build responses (sessions, jobs)
 * without those importing `routes.ts` back (issue 13: the `routes.ts` ⇄ `sessions.ts` cycle).
 */

/**
 * A response built in full before anything is written, so the cache can store it and
 * answer later requests with it. Header names are lower case, one value each;
 * `Content-Length` and `X-Served-By` are added when it is sent.
 */
export interface BufferedResponse {
  status: number
  headers: Record<string, string>
  body: Buffer
}

/** Produces the response to one request. It never throws: a failure is a response too. */
export type Handler = () => Promise<BufferedResponse>

/** A text/plain response. */
export function text(status: number, body: string, headers: Record<string, string> = {}): BufferedResponse {
  return { status, headers: { 'content-type': 'text/plain; charset=utf-8', ...headers }, body: Buffer.from(body) }
}

/** A JSON response that no cache may keep: it reports live or per-client state. */
export function liveJson(value: unknown, status = 200, headers: Record<string, string> = {}): BufferedResponse {
  return {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
    body: Buffer.from(JSON.stringify(value)),
  }
}

/** The path of a request target, without the query. */
export function pathOf(target: string): string {
  const q = target.indexOf('?')
  return q === -1 ? target : target.slice(0, q)
}
