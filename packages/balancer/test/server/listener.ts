// The listener: what it refuses itself (CONNECT, what Node's parser refuses) and what it hands the balancer.
import t from 'tap'
import { Connections, applyTimeouts, createListener } from '../../src/server/listener.js'
import { rawExchange, serve, startBalancer, startUpstream } from '../fixtures/servers.js'

t.test('bad requests get the right 4xx', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec])
  const twoHosts = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')
  t.match(twoHosts, /^HTTP\/1\.1 400 /, 'two Host headers: 400')
  t.match(twoHosts, /more than one Host header/, 'with a reason')
  const connect = await rawExchange(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
  t.match(connect, /^HTTP\/1\.1 405 /, 'CONNECT: 405')
  t.match(connect, /\r\nAllow: GET, HEAD, POST/, 'with Allow')
  const noHost = await rawExchange(port, 'GET / HTTP/1.1\r\n\r\n')
  t.match(noHost, /^HTTP\/1\.1 400 /, 'HTTP/1.1 without Host: 400')
  const smuggle = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n')
  t.match(smuggle, /^HTTP\/1\.1 400 /, 'Content-Length with Transfer-Encoding: 400')
  const huge = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
  t.match(huge, /^HTTP\/1\.1 431 /, 'oversized headers: 431')
  t.equal(a.seen.length, 0, 'none of them reached the upstream')
})

t.test(
  'a listener hands requests and upgrades to its handlers, counts connections, and answers CONNECT and bad requests itself',
  async t => {
    const handled: string[] = []
    const counts: number[] = []
    const connections = new Connections(open => counts.push(open))
    const server = createListener(
      {
        request: (req, res) => {
          handled.push(`request ${req.url}`)
          res.end('ok')
        },
        upgrade: (req, socket) => {
          handled.push(`upgrade ${req.url}`)
          socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n')
        },
      },
      connections,
      { clientHeaderTimeout: 5000, keepAliveTimeout: 1000 },
    )
    t.same([server.headersTimeout, server.keepAliveTimeout], [5000, 1000], 'the timeouts given')
    applyTimeouts(server, { clientHeaderTimeout: 6000, keepAliveTimeout: 2000 })
    t.same([server.headersTimeout, server.keepAliveTimeout], [6000, 2000], 'and again on reload')
    const port = await serve(t, server)
    t.match(
      await rawExchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'),
      /^HTTP\/1\.1 200 [^]*ok$/,
      'a request: to the handler',
    )
    t.match(
      await rawExchange(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'),
      /^HTTP\/1\.1 400 /,
      'an upgrade: to its handler',
    )
    const connect = await rawExchange(port, 'CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n')
    t.equal(
      connect,
      'HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH\r\nContent-Type: text/plain; charset=utf-8\r\n' +
        'X-Content-Type-Options: nosniff\r\nContent-Length: 71\r\nConnection: close\r\n\r\nCONNECT is not supported: this is a reverse proxy, not a forward proxy\n',
      'CONNECT: 405 with Allow, by the listener',
    )
    t.match(
      await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*\r\n\r\n400 Bad Request: the request is malformed \(HPE_INVALID_HEADER_TOKEN\)\n$/,
      "Node's parser refusal: 400 naming it",
    )
    t.match(
      await rawExchange(port, 'HEAD / HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n'),
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*Content-Length: \d+\r\nConnection: close\r\n\r\n$/,
      'and no body when it may have been a HEAD',
    )
    t.same(handled, ['request /a', 'upgrade /ws'], 'the handlers saw only what was theirs')
    t.equal(connections.total, 5, 'five connections accepted')
    while (connections.open > 0) await new Promise(resolve => setImmediate(resolve))
    t.equal(counts.length, 10, 'told each change: five opened, five closed')
    t.equal(counts.at(-1), 0, 'the last change: none open')
  },
)
