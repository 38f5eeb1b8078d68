import { once } from 'node:events'
import { Agent, request, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { BackendOptions } from '../src/config.js'
import { Backend, createBackend, listeningUrl } from '../src/server.js'

async function start(t: Test, options: BackendOptions = {}): Promise<{ backend: Backend; base: string; port: number }> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  const { port } = backend.address() as AddressInfo
  return { backend, base: `http://127.0.0.1:${port}`, port }
}

/** A GET over node:http with `agent`, for tests that care which connection is used. */
function getWith(agent: Agent, port: number, path: string): Promise<IncomingMessage & { body: string }> {
  return new Promise((resolve, reject) => {
    request({ port, host: '127.0.0.1', path, agent }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => (body += chunk))
      res.on('end', () => resolve(Object.assign(res, { body })))
    })
      .on('error', reject)
      .end()
  })
}

/** Sends raw bytes and returns everything the server sends back before it closes. */
async function rawExchange(port: number, data: string): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  socket.end(data)
  let reply = ''
  socket.setEncoding('utf8')
  for await (const chunk of socket) reply += chunk as string
  return reply
}

t.test('createBackend returns a Backend that is not listening yet', async t => {
  const backend = createBackend()
  t.ok(backend instanceof Backend, 'a Backend')
  t.equal(backend.listening, false, 'not listening')
  t.equal(backend.id, 'backend', 'without a port, the id is just "backend"')
  t.equal(backend.headersTimeout, 10_000, 'headers must arrive within 10 s')
  t.equal(backend.requestTimeout, 30_000, 'a whole request must arrive within 30 s')
  t.equal(backend.keepAliveTimeout, 5_000, "keep-alive stays Node's 5 s")
  t.throws(() => createBackend({ cacheTtl: -5 }), { name: 'ConfigError', message: /^cacheTtl: -5 / }, 'a bad option throws at once')
})

t.test('every response carries X-Served-By with the id, and nosniff', async t => {
  const { base, port } = await start(t, { exposeStats: true })
  const requests: Array<[string, RequestInit]> = [
    ['/', {}],
    ['/slow?ms=1', {}],
    ['/slow?ms=x', {}],
    ['/healthz', { method: 'HEAD' }],
    ['/stats', {}],
    ['/echo', { method: 'POST', body: 'b' }],
    ['/echo', { method: 'POST', body: '<script>1</script>', headers: { 'content-type': 'text/html' } }],
    ['/session', {}],
    ['/missing', {}],
    ['/', { method: 'DELETE' }],
  ]
  for (const [path, init] of requests) {
    const res = await fetch(`${base}${path}`, init)
    t.equal(res.headers.get('x-served-by'), `backend-${port}`, `${init.method ?? 'GET'} ${path} (${res.status}): X-Served-By`)
    t.equal(res.headers.get('x-content-type-options'), 'nosniff', `${init.method ?? 'GET'} ${path} (${res.status}): nosniff`)
  }
  const named = await start(t, { id: 'blue' })
  t.equal(named.backend.id, 'blue', 'a given id is used as is')
  t.equal((await fetch(`${named.base}/`)).headers.get('x-served-by'), 'blue', 'and sent as X-Served-By')
})

t.test('the access log has one line per request: method, target, status, X-Cache, duration; health checks only when asked', async t => {
  const lines: string[] = []
  const { base } = await start(t, { accessLog: line => lines.push(line) })
  await fetch(`${base}/?q=1`)
  await fetch(`${base}/?q=1`)
  // A balancer's check every 2 s would bury the access lines: not logged by default (nginx users set access_log off for it).
  await fetch(`${base}/healthz`)
  await fetch(`${base}/nope`)
  t.equal(lines.length, 3, 'four requests, three lines: the health check is not logged')
  t.match(lines[0], /^GET \/\?q=1 200 MISS \d+\.\dms$/, 'a miss')
  t.match(lines[1], /^GET \/\?q=1 200 HIT \d+\.\dms$/, 'a hit')
  t.match(lines[2], /^GET \/nope 404 BYPASS \d+\.\dms$/, 'a 404')

  const logged: string[] = []
  const verbose = await start(t, { accessLog: line => logged.push(line), logHealthChecks: true })
  await fetch(`${verbose.base}/healthz`)
  t.equal(logged.length, 1, 'with logHealthChecks, the check has its line')
  t.match(logged[0], /^GET \/healthz 200 - \d+\.\dms$/, 'a route outside the cache: -')
})

t.test('close() lets an in-flight request finish, closes idle connections, then calls back', async t => {
  const backend = createBackend()
  // Ten minutes: a close() that waited for idle connections to time out would take that long,
  // far past any machine's slowness.
  backend.keepAliveTimeout = 600_000
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const { port } = backend.address() as AddressInfo
  const agent = new Agent({ keepAlive: true, maxSockets: 2 })
  t.teardown(() => agent.destroy())
  // Two connections: one left idle after its request, one busy with /slow when close() is called.
  const [warm] = await Promise.all([getWith(agent, port, '/'), getWith(agent, port, '/healthz')])
  t.equal(warm.headers.connection, 'keep-alive', 'connections are kept alive before close()')
  const slow = getWith(agent, port, '/slow?ms=300')
  await once(backend, 'request')
  let closed = false
  const closeStarted = performance.now()
  const done = new Promise<void>(resolve =>
    backend.close(err => {
      closed = true
      t.equal(err, undefined, 'closed without an error')
      resolve()
    }),
  )
  const refused = await new Promise<string>(resolve =>
    connect(port, '127.0.0.1').on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code))),
  )
  t.equal(refused, 'ECONNREFUSED', 'new connections are refused at once')
  t.equal(closed, false, 'close() waits for the request in flight')
  const res = await slow
  t.equal(res.statusCode, 200, 'the in-flight request finished with 200')
  t.equal(res.headers.connection, 'close', 'its response closes the connection')
  t.equal(res.headers['x-served-by'], `backend-${port}`, 'the id still names the port after close()')
  t.match(res.body, /^Slow response after 300 ms/, 'with its body')
  await done
  t.equal(closed, true, 'close() called back once the last connection was gone')
  const waited = performance.now() - closeStarted
  t.ok(waited < 60_000, `no keep-alive connection held close() up until keepAliveTimeout (${waited.toFixed(0)} ms)`)
})

t.test('a backend closed and listening again keeps connections alive again', async t => {
  const { backend, port } = await start(t)
  await new Promise<void>(resolve => backend.close(() => resolve()))
  backend.listen(port, '127.0.0.1')
  await once(backend, 'listening')
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const res = await getWith(agent, port, '/')
  t.equal(res.headers.connection, 'keep-alive', 'no longer closing')
  t.equal(res.headers['x-served-by'], `backend-${port}`, 'same port, same id')
})

t.test('a malformed request gets 400 and the server keeps serving', async t => {
  const { base, port } = await start(t)
  const reply = await rawExchange(port, 'NOT HTTP AT ALL\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n/, 'answered 400 by Node')
  t.equal((await fetch(`${base}/`)).status, 200, 'the next request is served')
})

t.test('a client that leaves during /slow harms nothing', async t => {
  const lines: string[] = []
  const { backend, base, port } = await start(t, { accessLog: line => lines.push(line) })
  const req = request({ port, host: '127.0.0.1', path: '/slow?ms=100' })
  req.on('error', () => {})
  req.end()
  await once(backend, 'request')
  req.destroy()
  // The handler's response is still stored; the next request is answered from it.
  const res = await fetch(`${base}/slow?ms=100`)
  t.equal(res.status, 200, 'the server still answers')
  t.equal(res.headers.get('x-cache'), 'HIT', 'from the response the vanished client left behind')
  t.match(lines[0], /^GET \/slow\?ms=100 200 MISS/, 'the first request is logged though its client left')
})

t.test('listeningUrl writes IPv6 addresses in brackets', async t => {
  t.equal(listeningUrl({ address: '127.0.0.1', family: 'IPv4', port: 5000 }), 'http://127.0.0.1:5000', 'IPv4 as is')
  t.equal(listeningUrl({ address: '::1', family: 'IPv6', port: 5001 }), 'http://[::1]:5001', 'IPv6 in brackets')
})
