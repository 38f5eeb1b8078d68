import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { request } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { BackendOptions } from '../src/config.js'
import { createBackend, type Backend } from '../src/server.js'

/** A backend on a free port, closed when the test ends. */
async function start(t: Test, options: BackendOptions = {}): Promise<{ backend: Backend; base: string; port: number }> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  const { port } = backend.address() as AddressInfo
  return { backend, base: `http://127.0.0.1:${port}`, port }
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex')

t.test('GET / says hello with the id', async t => {
  const { base, port } = await start(t)
  const res = await fetch(`${base}/`)
  t.equal(res.status, 200, 'answered 200')
  t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', 'as text/plain')
  t.equal(await res.text(), `Hello, World! from backend-${port}`, 'the body names the backend')
})

t.test('GET / with an Accept that names text/html answers a tiny page with the same words', async t => {
  const { base, port } = await start(t)
  const page = await fetch(`${base}/`, { headers: { accept: 'text/html,application/xhtml+xml,*/*;q=0.8' } })
  t.equal(page.status, 200, 'answered 200')
  t.equal(page.headers.get('content-type'), 'text/html; charset=utf-8', 'as text/html')
  t.equal(page.headers.get('vary'), 'Accept', 'Vary: Accept')
  const html = await page.text()
  t.match(html, `<p id="hello">Hello, World! from backend-${port}</p>`, 'the same words, naming the backend')
  t.match(html, '<link rel="icon" href="data:,">', 'an empty icon: the browser asks for no favicon')
  for (const accept of ['*/*', 'text/*', 'image/*,*/*;q=0.8', 'text/html;q=0']) {
    const res = await fetch(`${base}/`, { headers: { accept } })
    t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', `Accept ${accept}: text/plain`)
    t.equal(res.headers.get('vary'), 'Accept', `Accept ${accept}: Vary: Accept too`)
    t.equal(await res.text(), `Hello, World! from backend-${port}`, `Accept ${accept}: the line as before`)
  }
  const none = await new Promise<{ type: string | undefined; body: string }>((resolve, reject) => {
    request({ port, host: '127.0.0.1', path: '/' }, res => {
      let body = ''
      res.setEncoding('utf8').on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ type: res.headers['content-type'], body }))
    })
      .on('error', reject)
      .end()
  })
  t.same(none, { type: 'text/plain; charset=utf-8', body: `Hello, World! from backend-${port}` }, 'no Accept at all: text')
})

t.test('GET /slow waits the given time, 500 ms by default', async t => {
  const { base } = await start(t, { id: 'slowpoke' })
  const t0 = performance.now()
  const res = await fetch(`${base}/slow?ms=50`)
  const elapsed = performance.now() - t0
  t.equal(res.status, 200, 'answered 200')
  t.equal(await res.text(), 'Slow response after 50 ms from slowpoke', 'the body says how long it waited')
  t.ok(elapsed >= 45, `it waited about 50 ms (${elapsed.toFixed(0)} ms)`)
  const byDefault = await fetch(`${base}/slow`)
  t.equal(await byDefault.text(), 'Slow response after 500 ms from slowpoke', 'no ms: 500 ms')
  const zero = await fetch(`${base}/slow?ms=0&other=1`)
  t.equal(await zero.text(), 'Slow response after 0 ms from slowpoke', 'ms=0 is allowed')
})

t.test('GET /slow with a bad ms answers 400 with a one-line reason', async t => {
  const { base } = await start(t)
  for (const ms of ['abc', '10001', '-1', '', '1.5', '123456', '5e2']) {
    const res = await fetch(`${base}/slow?ms=${encodeURIComponent(ms)}`)
    t.equal(res.status, 400, `ms=${ms} is a 400`)
    t.equal(res.headers.get('content-type'), 'text/plain; charset=utf-8', `ms=${ms}: text/plain`)
    t.equal(await res.text(), `ms: ${JSON.stringify(ms)} is not a whole number from 0 to 10000`, `ms=${ms}: the reason`)
  }
})

t.test('GET /healthz reports status, id and uptime, never cached', async t => {
  let now = 1_000_000
  const { base, port } = await start(t, { clock: () => now })
  now += 5_500
  const res = await fetch(`${base}/healthz`)
  t.equal(res.status, 200, 'answered 200')
  t.equal(res.headers.get('content-type'), 'application/json', 'as JSON')
  t.equal(res.headers.get('cache-control'), 'no-store', 'no cache may keep it')
  t.equal(res.headers.get('x-cache'), null, 'it does not go through the response cache')
  t.same(await res.json(), { status: 'ok', id: `backend-${port}`, uptimeSeconds: 5 }, 'status ok, id, whole seconds up')
})

t.test('GET /stats counts requests per method and path, never cached', async t => {
  const { base } = await start(t, { id: 'counted', exposeStats: true })
  await fetch(`${base}/?a=1`)
  await fetch(`${base}/`)
  await fetch(`${base}/echo`, { method: 'POST', body: 'x' })
  await fetch(`${base}/missing`)
  const res = await fetch(`${base}/stats`)
  t.equal(res.headers.get('cache-control'), 'no-store', 'no cache may keep it')
  t.equal(res.headers.get('x-cache'), null, 'it does not go through the response cache')
  t.same(
    await res.json(),
    { id: 'counted', requests: { 'GET /': 2, 'POST /echo': 1, 'GET /missing': 1, 'GET /stats': 1 } },
    'the query is not part of the key; cache hits and 404s count; so does this request',
  )
})

t.test('without exposeStats, /stats is a 404 like any unknown path, and counting goes on', async t => {
  const { backend, base } = await start(t)
  await fetch(`${base}/reset-password/secret-token`)
  const stats = await fetch(`${base}/stats`)
  const unknown = await fetch(`${base}/nope`)
  t.equal(stats.status, 404, '/stats: 404')
  t.equal(await stats.text(), 'Not Found: no route for /stats', 'with the same words as any unknown path')
  t.same(
    [stats.headers.get('content-type'), stats.headers.get('cache-control'), stats.headers.get('x-cache')],
    [unknown.headers.get('content-type'), unknown.headers.get('cache-control'), unknown.headers.get('x-cache')],
    'and the same headers: nothing tells that the route exists',
  )
  t.equal((await fetch(`${base}/stats`, { method: 'POST' })).status, 404, 'POST /stats: 404, not 405')
  t.equal(backend.stats.toJSON()['GET /reset-password/secret-token'], 1, 'Backend.stats still counts, in process only')
})

t.test('/echo answers the body with its method, length and SHA-256', async t => {
  const { base } = await start(t)
  const binary = Buffer.from([0, 1, 2, 253, 254, 255])
  const cases = [
    { method: 'POST', body: 'hello', type: 'text/plain' },
    { method: 'PUT', body: binary, type: 'application/octet-stream' },
    { method: 'PATCH', body: '{"a":1}', type: 'application/json' },
  ]
  for (const { method, body, type } of cases) {
    const res = await fetch(`${base}/echo`, { method, body, headers: { 'content-type': type } })
    t.equal(res.status, 200, `${method}: 200`)
    t.same(Buffer.from(await res.arrayBuffer()), Buffer.from(body), `${method}: the body comes back intact`)
    t.equal(res.headers.get('x-echo-method'), method, `${method}: X-Echo-Method`)
    t.equal(res.headers.get('x-echo-bytes'), String(Buffer.byteLength(body)), `${method}: X-Echo-Bytes`)
    t.equal(res.headers.get('x-echo-sha256'), sha256(body), `${method}: X-Echo-Sha256`)
    t.equal(res.headers.get('content-type'), type, `${method}: the request's content type`)
    t.equal(res.headers.get('x-cache'), null, `${method}: not through the cache`)
  }
  const empty = await fetch(`${base}/echo`, { method: 'DELETE' })
  t.equal(empty.status, 200, 'DELETE without a body: 200')
  t.equal(empty.headers.get('x-echo-bytes'), '0', 'no body: 0 bytes')
  t.equal(empty.headers.get('x-echo-sha256'), sha256(''), 'no body: the hash of nothing')
  t.equal(empty.headers.get('content-type'), 'application/octet-stream', 'no content type: octet-stream')
})

t.test('/echo answers 413 and closes the connection for a body over maxBodyBytes', async t => {
  const { base } = await start(t, { maxBodyBytes: 1024 })
  const ok = await fetch(`${base}/echo`, { method: 'POST', body: 'x'.repeat(1024) })
  t.equal(ok.headers.get('x-echo-bytes'), '1024', 'a body of exactly the limit is echoed')
  const res = await fetch(`${base}/echo`, { method: 'POST', body: 'x'.repeat(64 * 1024) })
  t.equal(res.status, 413, 'over the limit: 413')
  t.equal(res.headers.get('connection'), 'close', 'the connection closes, so the client stops sending')
  t.equal(await res.text(), 'request body is over 1024 bytes', 'the reason names the limit')
})

t.test('/echo whose client goes away mid-body is logged as 400 and harms nothing', async t => {
  let onLine: (line: string) => void = () => {}
  const logged = new Promise<string>(resolve => (onLine = resolve))
  const { backend, base, port } = await start(t, { accessLog: line => onLine(line) })
  const req = request({ port, host: '127.0.0.1', method: 'POST', path: '/echo', headers: { 'content-length': '100' } })
  req.on('error', () => {})
  req.write('only part of it')
  await once(backend, 'request')
  req.destroy()
  t.match(await logged, /^POST \/echo 400 - \d+\.\dms$/, 'the cut-short request is logged as 400')
  const res = await fetch(`${base}/`)
  t.equal(res.status, 200, 'the server still answers')
})

t.test('unknown path: 404; known path, wrong method: 405 with Allow', async t => {
  const { base } = await start(t, { exposeStats: true })
  const missing = await fetch(`${base}/nope?x=1`)
  t.equal(missing.status, 404, 'unknown path: 404')
  t.equal(missing.headers.get('content-type'), 'text/plain; charset=utf-8', '404 as text/plain')
  t.equal(await missing.text(), 'Not Found: no route for /nope', 'the 404 names the path, without the query')
  const cases = [
    { method: 'POST', path: '/', allow: 'GET, HEAD' },
    { method: 'DELETE', path: '/slow', allow: 'GET, HEAD' },
    { method: 'PUT', path: '/healthz', allow: 'GET, HEAD' },
    { method: 'POST', path: '/stats', allow: 'GET, HEAD' },
    { method: 'POST', path: '/session', allow: 'GET, HEAD' },
    { method: 'OPTIONS', path: '/', allow: 'GET, HEAD' },
    { method: 'GET', path: '/echo', allow: 'POST, PUT, DELETE, PATCH' },
    { method: 'HEAD', path: '/echo', allow: 'POST, PUT, DELETE, PATCH' },
  ]
  for (const { method, path, allow } of cases) {
    const res = await fetch(`${base}${path}`, { method })
    t.equal(res.status, 405, `${method} ${path}: 405`)
    t.equal(res.headers.get('allow'), allow, `${method} ${path}: Allow: ${allow}`)
    if (method !== 'HEAD') {
      t.equal(await res.text(), `Method Not Allowed: ${path} answers ${allow}`, `${method} ${path}: the reason`)
    }
  }
})

t.test('HEAD works on every GET route, without a body', async t => {
  // A clock that stands still keeps /healthz the same length from one request to the next.
  const { base } = await start(t, { cacheTtl: 0, clock: () => 1_000_000 })
  for (const path of ['/', '/slow?ms=1', '/healthz']) {
    const get = await fetch(`${base}${path}`)
    const getLength = (await get.arrayBuffer()).byteLength
    const head = await fetch(`${base}${path}`, { method: 'HEAD' })
    t.equal(head.status, 200, `HEAD ${path}: 200`)
    t.equal((await head.arrayBuffer()).byteLength, 0, `HEAD ${path}: no body`)
    t.equal(head.headers.get('content-length'), String(getLength), `HEAD ${path}: the GET's Content-Length`)
  }
})
