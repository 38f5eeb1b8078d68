import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import t from 'tap'
import { HOLD_LIMIT } from '../../src/forward/replay-body.js'
import {
  closedPort,
  fetchText,
  rawExchange,
  startBalancer,
  startRawUpstream,
  startUpstream,
  sha256,
} from '../fixtures/servers.js'

/** An upstream that reads a request in full, then resets the connection without answering. */
async function resettingUpstream(t: Parameters<typeof startRawUpstream>[0]) {
  return startRawUpstream(t, (socket, received) => {
    const head = received.indexOf('\r\n\r\n')
    if (head < 0) return
    const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0)
    if (received.length - head - 4 >= length) socket.resetAndDestroy()
  })
}

t.test('with one upstream refusing, 20 GETs are all 200 and it is marked down once', async t => {
  const a = await startUpstream(t, 'a')
  const dead = await closedPort()
  const { port, logs } = await startBalancer(t, [a.spec, dead])
  const statuses = []
  for (let i = 0; i < 20; i++) statuses.push((await fetchText(port)).status)
  t.same(statuses, Array(20).fill(200), 'every GET answered 200')
  t.equal(a.seen.length, 20, 'all went to the live upstream')
  t.same(
    logs.filter(l => l.includes('marked down')),
    [`upstream ${dead} marked down: 1 failure(s) in 10s, last: ECONNREFUSED; skipped for 10s`],
    'the flip is logged once, with its reason',
  )
})

t.test('a POST to a refused upstream arrives once elsewhere with its body intact', async t => {
  const dead = await closedPort()
  const a = await startUpstream(t, 'a', (_req, res, seen) => res.end(seen.sha256))
  const { port } = await startBalancer(t, [dead, a.spec])
  const body = Buffer.alloc(3 * 1024 * 1024, 'payload-')
  const reply = await fetchText(port, { method: 'POST', path: '/orders', body })
  t.equal(reply.status, 200, 'answered 200')
  t.equal(reply.body, sha256(body), 'the body arrived byte for byte')
  t.equal(a.seen.length, 1, 'and arrived once')
})

t.test('a retried request is forwarded as its first try was: headers rewritten once, not twice', async t => {
  const dead = await closedPort()
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [dead, a.spec])
  const reply = await fetchText(port, { path: '/twice//path?q=1', headers: { 'x-forwarded-for': '203.0.113.7', connection: 'keep-alive, X-Hop', 'x-hop': '1' } })
  t.equal(reply.status, 200, 'the second upstream answered')
  const seen = a.seen[0]
  t.equal(seen?.url, '/twice//path?q=1', 'path and query byte for byte')
  t.equal(seen?.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'the peer appended once')
  t.notOk('x-hop' in (seen?.headers ?? {}), 'a Connection-named header still dropped')
})

t.test('a POST that reached an upstream which reset is answered 502 and not sent again', async t => {
  const reset = await resettingUpstream(t)
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [reset.spec, b.spec])
  const reply = await fetchText(port, { method: 'POST', path: '/pay', body: 'amount=10' })
  t.equal(reply.status, 502, '502')
  t.match(reply.headers['content-type'], /^text\/plain/, 'text/plain')
  t.match(reply.body, /502 Bad Gateway: .*ECONNRESET/, 'the body says what failed')
  t.equal(reset.connections, 1, 'the POST reached the first upstream once')
  t.equal(b.seen.length, 0, 'and was not sent to the second')
})

t.test('idempotent requests that reached a resetting upstream are retried', async t => {
  const reset = await resettingUpstream(t)
  const b = await startUpstream(t, 'b', (_req, res, seen) => res.end(`${seen.method} ${seen.sha256}`))
  // A fresh balancer for each request, so round-robin tries the resetting upstream first.
  const send = async (options: Parameters<typeof fetchText>[1]) =>
    fetchText((await startBalancer(t, [reset.spec, b.spec])).port, options)
  const get = await send({ path: '/a' })
  t.equal(get.status, 200, 'GET retried: 200')
  const small = Buffer.alloc(HOLD_LIMIT, 's')
  const put = await send({ method: 'PUT', path: '/b', body: small })
  t.equal(put.status, 200, 'PUT with a held body retried: 200')
  t.equal(put.body, `PUT ${sha256(small)}`, 'the held body was replayed intact')
  const large = Buffer.alloc(HOLD_LIMIT + 1, 'l')
  const big = await send({ method: 'PUT', path: '/c', body: large })
  t.equal(big.status, 502, 'PUT with a body too large to hold: 502, not retried')
  t.equal(reset.connections, 3, 'each request reached the resetting upstream first')
  t.same(
    b.seen.map(s => `${s.method} ${s.url}`),
    ['GET /a', 'PUT /b'],
    'the second upstream got only the retried requests',
  )
})

t.test('a request refused everywhere is 502; once all are down, 503', async t => {
  const [x, y] = [await closedPort(), await closedPort()]
  const { port, access } = await startBalancer(t, [x, y])
  const first = await fetchText(port, { method: 'POST', body: 'data' })
  t.equal(first.status, 502, 'tried both, both failed: 502')
  t.match(first.body, /^502 Bad Gateway: every upstream that was tried failed/, 'with a body')
  const second = await fetchText(port)
  t.equal(second.status, 503, 'nothing left to try: 503')
  t.match(second.body, /^503 Service Unavailable: no upstream available/, 'with a body')
  const pipelined = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(pipelined.match(/HTTP\/1\.1 503 /g)?.length, 2, 'a bodiless request keeps its connection for the next')
  const head = await fetchText(port, { method: 'HEAD' })
  t.equal(head.status, 503, 'HEAD: 503')
  t.equal(head.body, '', 'HEAD: no body')
  t.match(access[1], /^GET \/ 503 - /, 'access log line: method, path, status, no upstream, duration')
})

t.test('a POST refused with its body unread closes the client connection', async t => {
  const { port } = await startBalancer(t, [await closedPort(), await closedPort()])
  await fetchText(port)
  const req = request({ host: '127.0.0.1', port, method: 'POST', agent: false, headers: { 'content-length': 10 } })
  req.write('12345')
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  t.equal(res.statusCode, 503, '503 before the body was complete')
  t.equal(res.headers.connection, 'close', 'Connection: close, rather than read the rest')
  res.resume()
  await once(res, 'end')
})

t.test('a failed upstream comes back into rotation after fail_timeout', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const bPort = b.port
  const { port, logs } = await startBalancer(t, [a.spec, b.spec], { failTimeout: 300 })
  await b.close()
  const during = []
  for (let i = 0; i < 4; i++) during.push((await fetchText(port)).headers['x-served-by'])
  t.same(during, ['a', 'a', 'a', 'a'], 'while b is down, a takes everything')
  const b2 = await startUpstream(t, 'b', undefined, bPort)
  await new Promise(resolve => setTimeout(resolve, 350))
  const after = []
  for (let i = 0; i < 4; i++) after.push((await fetchText(port)).headers['x-served-by'])
  t.same([...after].sort(), ['a', 'a', 'b', 'b'], 'b is back in rotation')
  t.ok(b2.seen.length === 2, 'the restarted b served its share')
  t.match(logs.at(-1), `upstream ${b.spec} is up again`, 'the recovery is logged')
})

t.test('after fail_timeout, one more failure marks the upstream down again at once', async t => {
  const a = await startUpstream(t, 'a')
  const dead = await closedPort()
  const { port, logs } = await startBalancer(t, [dead, a.spec], { failTimeout: 100, maxFails: 2 })
  // Round-robin tries the dead upstream on requests 1 and 3, each time retrying on a.
  await fetchText(port)
  await fetchText(port)
  t.equal(logs.length, 0, 'one failure of max_fails=2 does not mark it down')
  await fetchText(port)
  t.equal(logs.length, 1, 'the second does')
  await new Promise(resolve => setTimeout(resolve, 150))
  await fetchText(port)
  await fetchText(port)
  t.equal(a.seen.length, 5, 'every request was answered by the live upstream')
  t.equal(logs.length, 1, 'the flip is not logged again while it stays down')
})

t.test('a pool of one upstream never marks it down', async t => {
  const { port } = await startBalancer(t, [await closedPort()])
  const statuses = [(await fetchText(port)).status, (await fetchText(port)).status]
  t.same(statuses, [502, 502], 'each request tries it: 502, never 503')
})

t.test('an upstream that never answers gets a 504, and the request is not retried', async t => {
  const silent = await startRawUpstream(t, () => {})
  const b = await startUpstream(t, 'b')
  const { port, logs } = await startBalancer(t, [silent.spec, b.spec], { timeout: 1000 })
  const started = Date.now()
  const reply = await fetchText(port)
  const took = Date.now() - started
  t.equal(reply.status, 504, '504')
  t.match(reply.body, /^504 Gateway Timeout: .*SWITCHYARD_UPSTREAM_TIMEOUT/, 'with a body')
  // Timers never fire early; late, by as much as the machine is loaded. The bound tells the
  // 1 s timeout from the 60 s default, which is what a failure here would be.
  t.ok(took >= 950 && took < 10_000, `at the 1 s timeout, not the 60 s default (${took} ms)`)
  t.equal(b.seen.length, 0, 'a timeout is not retried on the next upstream')
  t.match(logs[0], 'marked down', 'the timeout counts as a failure')
})

t.test('invalid upstream responses are 502 and the balancer stays up', async t => {
  const cases: [string, string][] = [
    ['bad status line', 'HTTP/1.1 2OO NOPE\r\n\r\n'],
    ['Content-Length with Transfer-Encoding', 'HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
    ['overflowing headers', `HTTP/1.1 200 OK\r\nX-Huge: ${'h'.repeat(100_000)}\r\n\r\n`],
    ['a reset before any byte', ''],
  ]
  for (const [name, answer] of cases) {
    const bad = await startRawUpstream(t, socket => (answer === '' ? socket.resetAndDestroy() : socket.end(answer)))
    const { port } = await startBalancer(t, [bad.spec])
    t.equal((await fetchText(port)).status, 502, `${name}: GET 502`)
    t.equal((await fetchText(port, { method: 'POST', body: 'x' })).status, 502, `${name}: POST 502, still up`)
    t.equal(bad.connections, 2, `${name}: each request reached it once, nothing was sent twice`)
  }
})

t.test('a client that leaves mid-upload aborts the upstream request at once', async t => {
  let upstreamGone: () => void = () => {}
  const gone = new Promise<void>(resolve => (upstreamGone = resolve))
  const listener = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.once('close', upstreamGone)
  })
  const { port, logs } = await startBalancer(t, [listener.spec])
  const req = request({ host: '127.0.0.1', port, method: 'POST', agent: false, headers: { 'content-length': 1_000_000 } })
  req.on('error', () => {})
  req.write(Buffer.alloc(100_000))
  while (listener.connections < 1) await new Promise(resolve => setTimeout(resolve, 5))
  const started = Date.now()
  req.destroy()
  await gone
  // Not left to the 60 s client body timeout.
  t.ok(Date.now() - started < 10_000, `the upstream connection closed ${Date.now() - started} ms after the client left`)
  t.equal(logs.length, 0, 'not counted against the upstream')
})

t.test('a response the upstream cuts short ends the client connection at once', async t => {
  for (const how of ['FIN', 'RST']) {
    const cut = await startRawUpstream(t, socket => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly ten b', () => {
        setTimeout(() => (how === 'FIN' ? socket.destroy() : socket.resetAndDestroy()), 20)
      })
    })
    const { port, logs } = await startBalancer(t, [cut.spec])
    const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    t.match(reply, /^HTTP\/1\.1 200 OK/, `${how}: the head was passed on`)
    t.match(reply, /only ten b$/, `${how}: then the bytes there were, then the connection closed`)
    t.same(logs, [`upstream ${cut.spec} marked down: 1 failure(s) in 10s, last: truncated response; skipped for 10s`], `${how}: counted once as a failure`)
  }
})

t.test('a client that leaves aborts the upstream request, and it is not held against it', async t => {
  let upstreamClosed: () => void = () => {}
  const closed = new Promise<void>(resolve => (upstreamClosed = resolve))
  const slow = await startUpstream(t, 'slow', (req, res) => {
    if (req.url === '/late') {
      res.on('close', upstreamClosed)
      return
    }
    res.end('fine')
  })
  const { port, logs, access } = await startBalancer(t, [slow.spec])
  const req = request({ host: '127.0.0.1', port, path: '/late', agent: false })
  req.on('error', () => {})
  req.end()
  while (slow.seen.length === 0) await new Promise(resolve => setImmediate(resolve))
  req.destroy()
  const started = Date.now()
  await closed
  t.ok(Date.now() - started < 10_000, `the upstream request was aborted at once, not at the 60 s timeout (${Date.now() - started} ms)`)
  t.equal(logs.length, 0, 'the upstream was not counted as failed')
  t.equal((await fetchText(port)).status, 200, 'and still serves')
  t.match(access[0], /^GET \/late 499 /, 'logged as 499, as nginx does')
})

t.test('a client that leaves mid-response stops the upstream response', async t => {
  let upstreamClosed: () => void = () => {}
  const closed = new Promise<void>(resolve => (upstreamClosed = resolve))
  const streaming = await startUpstream(t, 's', (_req, res) => {
    res.on('close', upstreamClosed)
    res.write('first chunk')
  })
  const { port, logs } = await startBalancer(t, [streaming.spec])
  const req = request({ host: '127.0.0.1', port, agent: false })
  req.on('error', () => {})
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  await once(res, 'data')
  res.destroy()
  await closed
  t.equal(logs.length, 0, 'not counted against the upstream')
})
