// Two plain node:http upstreams for `npm run bench`, in a process of their own so that their CPU
// is never counted with a proxy's. GET / answers a fixed body; nothing is cached or computed, so
// what an upstream costs is the same whichever proxy is in front. GET /cacheable and /miss/...
// answer the same body with `Cache-Control: public, max-age=600`, for the cache rows (a proxy
// that caches keeps /cacheable; the miss rows ask for a new /miss/N each time).
//
// Prints `ports A B` once both listen on 127.0.0.1 (port 0). Stops when stdin closes, i.e. when
// the bench goes away, however it went.

import { createServer } from 'node:http'

const BODY = 'Hello, World!\n'
/** What the cache rows are told: shared, fresh for ten minutes (nginx's proxy_cache_valid 200 10m agrees). */
const CACHEABLE = 'public, max-age=600'
/**
 * Longer than every proxy's idle upstream connection (nginx 60 s, Switchyard 4 s, http-proxy's
 * agent never closes first), so an upstream never closes a pooled connection that a proxy is just
 * reusing: that race would show as a retried or failed request that is the backend's doing.
 */
const KEEP_ALIVE_MS = 120_000

function upstream() {
  const server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(BODY) })
      res.end(BODY)
      return
    }
    if (req.method === 'GET' && (req.url === '/cacheable' || req.url.startsWith('/miss/'))) {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(BODY), 'cache-control': CACHEABLE })
      res.end(BODY)
      return
    }
    res.writeHead(404, { 'content-type': 'text/plain', 'content-length': 10 })
    res.end('not found\n')
  })
  server.keepAliveTimeout = KEEP_ALIVE_MS
  server.headersTimeout = KEEP_ALIVE_MS + 1000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve(server.address().port))
  })
}

const ports = await Promise.all([upstream(), upstream()])
process.stdout.write(`ports ${ports.join(' ')}\n`)
process.stdin.on('end', () => process.exit(0))
process.stdin.on('error', () => process.exit(0))
process.stdin.resume()
