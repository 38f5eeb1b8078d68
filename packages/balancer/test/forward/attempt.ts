import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import t from 'tap'
import { fetchText, rawExchange, startBalancer, startRawUpstream, startUpstream } from '../fixtures/servers.js'

t.test('an upstream that never answers gets a 504, and the request is not retried', async t => {
  const silent = await startRawUpstream(t, () => {})
  const b = await startUpstream(t, 'b')
  const { port, logs } = await startBalancer(t, [silent.spec, b.spec], { timeout: 1000 })
  const started = Date.now()
  const reply = await fetchText(port)
  const took = Date.now() - started
  t.equal(reply.status, 504, '504')
  t.match(reply.body, /^504 Gateway Timeout: upstream 127\.0\.0\.1:\d+ did not answer within [\d.]+m?s\n$/, 'with a body in words, no code')
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
    t.same(
      logs,
      [`upstream ${cut.spec} marked down: 1 failure(s) in 10s, last: truncated response; skipped for 10s`],
      `${how}: counted once as a failure`,
    )
  }
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
