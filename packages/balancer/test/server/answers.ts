// The balancer's own answers, on an HTTP response and on a raw socket, byte for byte.
import { once } from 'node:events'
import { createServer, request, type IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import t from 'tap'
import { answer, answerRaw, rawHead } from '../../src/server/answers.js'
import { closedPort, fetchText, rawExchange, serve, startBalancer } from '../fixtures/servers.js'

t.test('answer(): one line of text/plain, never sniffed; Connection: close when asked; no body for a HEAD', async t => {
  const sent: number[] = []
  const port = await serve(
    t,
    createServer((req, res) => sent.push(answer(req, res, 503, `503 Service Unavailable: ${req.url}`, req.url === '/close'))),
  )
  const reply = await rawExchange(
    port,
    'GET /a HTTP/1.1\r\nHost: x\r\n\r\nHEAD /b HTTP/1.1\r\nHost: x\r\n\r\nGET /close HTTP/1.1\r\nHost: x\r\n\r\n',
  )
  const [a, b, c] = reply.split(/(?=HTTP\/1\.1 )/)
  t.match(
    a,
    /^HTTP\/1\.1 503 Service Unavailable\r\ncontent-type: text\/plain; charset=utf-8\r\ncontent-length: 28\r\nx-content-type-options: nosniff\r\n/,
    'status, type, length, nosniff',
  )
  t.match(a, /\r\n\r\n503 Service Unavailable: \/a\n$/, 'the line and a newline')
  t.notMatch(a, /connection: close/i, 'the connection is kept')
  t.match(b, /\r\ncontent-length: 28\r\n[^]*\r\n\r\n$/, 'a HEAD: the length of the body it would have had, and no body')
  t.match(c, /\r\nconnection: close\r\n/i, 'close: Connection: close, and the connection closed')
  t.same(sent, [28, 0, 32], 'each returns the body bytes sent')
})

t.test('answer(): a body the client has not finished sending closes the connection', async t => {
  const port = await serve(
    t,
    createServer((req, res) => answer(req, res, 413, '413 Content Too Large: test')),
  )
  const reply = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc')
  t.match(reply, /^HTTP\/1\.1 413 [^]*\r\nconnection: close\r\n/i, 'closed rather than read to the end')
})

t.test('answerRaw(): a whole answer on a raw socket, extra headers first, then the socket ends', async t => {
  t.equal(
    rawHead('400 Bad Request', 5),
    'HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 5\r\nConnection: close\r\n\r\n',
    'the head',
  )
  let written = false
  const server = createServer()
  server.on('upgrade', (_req, socket: Duplex) =>
    answerRaw(socket, '501 Not Implemented', 'not here', 'X-Why: test\r\n', () => (written = true)),
  )
  const port = await serve(t, server)
  const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n')
  t.equal(
    reply,
    'HTTP/1.1 501 Not Implemented\r\nX-Why: test\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot here\n',
    'byte for byte',
  )
  t.ok(written, 'then told it was written')
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
