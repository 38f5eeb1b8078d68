// The headers a request carries upstream and a response carries back, through a real balancer.
import { once } from 'node:events'
import { request } from 'node:http'
import t from 'tap'
import { fetchText, rawExchange, startBalancer, startRawUpstream, startUpstream, sha256 } from '../fixtures/servers.js'

t.test('X-Forwarded-* headers: For appended, Proto and Host set, client Host kept', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  await fetchText(port, {
    headers: { host: 'shop.example:8443', 'x-forwarded-for': '203.0.113.7', 'x-forwarded-host': 'evil', 'x-forwarded-proto': 'gopher' },
  })
  await fetchText(port, { headers: { 'x-forwarded-for': '' } })
  const [first, second] = a.seen
  t.equal(first?.headers['x-forwarded-for'], '203.0.113.7, 127.0.0.1', 'peer appended to the client XFF')
  t.equal(first?.headers['x-forwarded-host'], 'shop.example:8443', 'XFH is the client Host, port included')
  t.equal(first?.headers['x-forwarded-proto'], 'http', 'XFP set by the balancer')
  t.equal(first?.headers.host, 'shop.example:8443', 'Host passed on')
  t.equal(second?.headers['x-forwarded-for'], '127.0.0.1', 'an empty XFF becomes just the peer')
})

t.test('an HTTP/1.0 request without Host is forwarded without X-Forwarded-Host', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  const reply = await rawExchange(port, 'GET /old HTTP/1.0\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 200 /, 'answered 200')
  t.notOk('x-forwarded-host' in (a.seen[0]?.headers ?? {}), 'no X-Forwarded-Host without a Host')
})

t.test('hop-by-hop request headers are removed, and those Connection names', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  await rawExchange(
    port,
    'POST /hop HTTP/1.1\r\nHost: x\r\nConnection: close, X-Secret-Hop\r\nX-Secret-Hop: 1\r\n' +
      'Keep-Alive: timeout=5\r\nTE: trailers\r\nTrailer: X-T\r\nProxy-Connection: keep-alive\r\n' +
      'Proxy-Authorization: Basic eDp5\r\nUpgrade: h2c\r\nX-End-To-End: kept\r\n' +
      'Transfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nX-T: 1\r\n\r\n',
  )
  const h = a.seen[0]?.headers ?? {}
  for (const name of ['x-secret-hop', 'keep-alive', 'te', 'trailer', 'proxy-connection', 'proxy-authorization', 'upgrade']) {
    t.notOk(name in h, `${name} not forwarded`)
  }
  t.equal(h.connection, 'keep-alive', "Connection is the balancer's own, for its upstream pool")
  t.equal(h['transfer-encoding'], 'chunked', "the body is framed by the balancer's own chunking")
  t.equal(a.seen[0]?.bytes, 2, 'the body arrived')
  t.equal(h['x-end-to-end'], 'kept', 'end-to-end headers pass')
})

t.test('headers a Connection value names stay hop-by-hop past the 64 values the balancer remembers', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  // Each request names a header of its own, so each Connection value is new to the balancer.
  for (let i = 0; i < 80; i++) {
    await fetchText(port, { headers: { connection: `keep-alive, X-Hop-${i}`, [`x-hop-${i}`]: '1', 'x-kept': String(i) } })
  }
  const leaked = a.seen.flatMap((r, i) => (`x-hop-${i}` in r.headers ? [i] : []))
  t.same(leaked, [], 'no named header reached the upstream, the 65th to 80th included')
  t.same(
    a.seen.map(r => r.headers['x-kept']),
    Array.from({ length: 80 }, (_, i) => String(i)),
    'the others did, all 80',
  )
})

t.test('hop-by-hop response headers are removed; repeats and casing kept', async t => {
  const raw = await startRawUpstream(t, (socket, received) => {
    if (!received.includes('\r\n\r\n')) return
    socket.end(
      'HTTP/1.1 200 OK\r\nConnection: close, X-Up-Hop\r\nX-Up-Hop: 1\r\nKeep-Alive: timeout=9\r\n' +
        'Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nTrailer: X-T\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n' +
        'X-CamelCase: yes\r\nContent-Length: 2\r\n\r\nok',
    )
  })
  const { port } = await startBalancer(t, [raw.spec])
  const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  const head = reply.split('\r\n\r\n')[0] as string
  for (const name of ['X-Up-Hop', 'Keep-Alive: timeout=9', 'Proxy-Authenticate', 'Upgrade', 'Trailer']) {
    t.notMatch(head, new RegExp(`^${name}`, 'mi'), `${name} not passed to the client`)
  }
  t.match(head, /Set-Cookie: a=1\r\nSet-Cookie: b=2/, 'both Set-Cookie headers, in order')
  t.match(head, /X-CamelCase: yes/, 'header casing kept')
  t.match(reply, /\r\n\r\nok$/, 'body passed')
})

t.test('paths and queries pass byte-identical, // included', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  const paths = ['//a//b/', '/x/../y/./z?q=%2F&r=//s', '/%7Euser/a%20b?', '/a;b=c?x=1&x=2#']
  for (const path of paths) await fetchText(port, { path })
  t.same(
    a.seen.map(s => s.url),
    paths,
    'the upstream sees each path as sent',
  )
})

t.test('a chunked DELETE keeps its body and the upstream connection stays in sync', async t => {
  const a = await startUpstream(t, 'a', (_req, res, seen) => res.end(`${seen.method} ${seen.bytes}`))
  const { port } = await startBalancer(t, [a.spec])
  const reply = await rawExchange(
    port,
    'DELETE /items/1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
      'OPTIONS /items HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n' +
      'GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
  )
  t.match(reply, /DELETE 3/, 'DELETE body arrived, 3 bytes')
  t.match(reply, /OPTIONS 2/, 'OPTIONS body arrived, 2 bytes')
  t.match(reply, /GET 0/, 'the next request on the same upstream connection parsed cleanly')
  t.same(
    a.seen.map(s => `${s.method} ${s.url} ${s.bytes}`),
    ['DELETE /items/1 3', 'OPTIONS /items 2', 'GET /after 0'],
    'the upstream saw three well-framed requests',
  )
})

t.test('a POST with Expect: 100-continue gets 100 and its body arrives', async t => {
  const a = await startUpstream(t, 'a', (_req, res, seen) => res.end(seen.sha256))
  const { port } = await startBalancer(t, [a.spec])
  const body = 'x'.repeat(100_000)
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/upload',
    agent: false,
    headers: { expect: '100-continue', 'content-length': body.length },
  })
  req.on('continue', () => req.end(body))
  req.flushHeaders()
  const [res] = (await once(req, 'response')) as [import('node:http').IncomingMessage]
  let text = ''
  for await (const chunk of res) text += chunk
  t.equal(res.statusCode, 200, 'answered 200')
  t.equal(text, sha256(body), 'the upstream got the whole body')
  t.notOk('expect' in (a.seen[0]?.headers ?? {}), 'Expect is answered by the balancer, not passed on')
})
