// One WebSocket upgrade end to end: its tries, the tunnel, how each side's end or failure reaches the other, and its log line.
import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect, type Socket } from 'node:net'
import { promisify } from 'node:util'
import t from 'tap'
import { WebSocket } from 'ws'
import { Sticky } from '../../src/select/sticky.js'
import { blackhole, closedPort, fetchText, rawExchange, startRawUpstream } from '../fixtures/servers.js'
import {
  balance,
  bounded,
  elapsed,
  handshake,
  open,
  roundTrip,
  startBackend,
  startRaw101,
  startWsUpstream,
} from '../fixtures/websockets.js'

t.test('echoes text and binary both ways, with the path intact and X-Forwarded-* set', bounded, async t => {
  const up = await startWsUpstream(t)
  const { balancer, port, logged } = await balance(t, [up.spec])
  const ws = await open(t, port, '/chat//room?x=1', { 'X-Forwarded-For': '10.0.0.1', 'Keep-Alive': 'timeout=5' })
  for (const text of ['one', 'two', 'three ü€']) {
    const reply = await roundTrip(ws, text)
    t.same([reply.data.toString(), reply.isBinary], [text, false], `"${text}" comes back as text`)
  }
  const bytes = Buffer.from([0, 1, 127, 128, 255])
  const reply = await roundTrip(ws, bytes)
  t.same([reply.data, reply.isBinary], [bytes, true], 'binary comes back as binary, byte for byte')
  const { req } = up.peers[0] as { req: IncomingMessage }
  t.equal(req.url, '/chat//room?x=1', 'the path and query reach the upstream byte for byte')
  t.match(
    req.headers,
    {
      'x-forwarded-for': '10.0.0.1, 127.0.0.1',
      'x-forwarded-proto': 'http',
      'x-forwarded-host': `127.0.0.1:${port}`,
      upgrade: 'websocket',
      connection: 'Upgrade',
    },
    'X-Forwarded-* are set and the upgrade headers kept',
  )
  t.notOk('keep-alive' in req.headers, 'other hop-by-hop headers are dropped')
  const upstream = balancer.pool.upstreams[0]
  t.equal(upstream?.inFlight, 1, 'an open WebSocket counts as one request in flight')

  const serverClosed = once(up.peers[0]?.ws as WebSocket, 'close')
  const line = logged()
  ws.close(1000, 'bye')
  const [code] = (await serverClosed) as [number]
  t.equal(code, 1000, 'the close handshake reaches the upstream')
  t.match(await line, /^GET \/chat\/\/room\?x=1 101 127\.0\.0\.1:\d+ [\d.]+ms$/, 'one access-log line when the tunnel closes')
  t.equal(upstream?.inFlight, 0, 'and it no longer counts in flight')
})

t.test('bytes the client sends with its handshake reach the upstream after it', bounded, async t => {
  const a = await startBackend(t)
  const { port } = await balance(t, [a.spec])
  // One masked text frame "hi" (RFC 6455 §5.3), in the same write as the handshake.
  const mask = [1, 2, 3, 4]
  const frame = Buffer.from([0x81, 0x82, ...mask, ...Buffer.from('hi').map((b, i) => b ^ (mask[i % 4] as number))])
  const client = connect(port, '127.0.0.1')
  client.write(Buffer.concat([Buffer.from(handshake()), frame]))
  let received = Buffer.alloc(0)
  while (!received.includes(Buffer.from([0x81, 0x02, 0x68, 0x69]))) {
    const [chunk] = (await once(client, 'data')) as [Buffer]
    received = Buffer.concat([received, chunk])
  }
  client.destroy()
  t.match(
    received.toString('latin1'),
    /^HTTP\/1\.1 101 Switching Protocols\r\n[^]*\r\n\r\n\x81\x02hi$/,
    'the frame is echoed after the 101',
  )
})

t.test('upgrades alternate between two backends (round-robin)', bounded, async t => {
  const a = await startBackend(t)
  const b = await startBackend(t)
  const { port } = await balance(t, [a.spec, b.spec])
  const order: string[] = []
  const clients: WebSocket[] = []
  for (let i = 0; i < 4; i++) {
    const before = a.backend.websockets.clients.size
    clients.push(await open(t, port))
    order.push(a.backend.websockets.clients.size > before ? 'a' : 'b')
  }
  t.same(order, ['a', 'b', 'a', 'b'], 'a b a b')
  t.equal(b.backend.websockets.clients.size, 2, 'b holds two')
  const replies = await Promise.all(clients.map((ws, i) => roundTrip(ws, `client ${i}`)))
  t.same(
    replies.map(r => r.data.toString()),
    ['client 0', 'client 1', 'client 2', 'client 3'],
    'each echoes on its own tunnel',
  )
})

t.test('an upgrade to a refused upstream is retried on the next', bounded, async t => {
  const dead = await closedPort()
  const a = await startBackend(t)
  const { balancer, port, logs } = await balance(t, [dead, a.spec])
  const ws = await open(t, port)
  t.equal((await roundTrip(ws, 'through')).data.toString(), 'through', 'the second upstream serves it')
  t.match(logs[0], /marked down: .*ECONNREFUSED/, 'the refusal counts against the first')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'which no longer counts the upgrade in flight')
})

t.test('all refused: 502 on the raw socket, and the balancer stays up', bounded, async t => {
  const { port, access } = await balance(t, [await closedPort(), await closedPort()])
  const reply = await rawExchange(port, handshake())
  t.match(reply, /^HTTP\/1\.1 502 Bad Gateway\r\n/, 'the status line is 502')
  t.match(reply, /\r\nContent-Type: text\/plain; charset=utf-8\r\n/, 'with a text/plain body')
  t.match(reply, /\r\nConnection: close\r\n/, 'and Connection: close')
  t.match(reply, /2 upstreams were tried; the last, 127\.0\.0\.1:\d+, refused the connection\n$/, 'the body says why')
  t.equal((await fetchText(port)).status, 503, 'the balancer still answers: both are now marked down')
  t.match(access[0], /^GET \/ws 502 /, 'the 502 is logged')
})

t.test('every upstream marked down: 503', bounded, async t => {
  const a = await startBackend(t)
  const { balancer, port, access } = await balance(t, [a.spec])
  balancer.pool.upstreams[0]?.setHealthy(false, 'test')
  const reply = await rawExchange(port, handshake())
  t.match(reply, /^HTTP\/1\.1 503 Service Unavailable\r\n/, 'the status line is 503')
  t.match(reply, /every upstream is marked down\n$/, 'the body says why')
  t.match(access[0], /^GET \/ws 503 - /, 'logged without an upstream')
})

t.test('the retry budget of requests bounds upgrades too', bounded, async t => {
  const a = await startBackend(t)
  const none = await balance(t, [await closedPort(), a.spec], { retries: 0 })
  t.match(await rawExchange(none.port, handshake()), /^HTTP\/1\.1 502 /, 'retries=0: one refused try, then 502')
  const hole = await blackhole(t)
  const capped = await balance(t, [hole, a.spec], { connectTimeout: 200, retryTimeout: 100 })
  t.match(await rawExchange(capped.port, handshake()), /^HTTP\/1\.1 504 /, 'past the retry timeout no new try starts: 504')
  t.equal(a.backend.websockets.clients.size, 0, 'the live upstream was never tried')
})

t.test('the connect timeout applies to upgrades', bounded, async t => {
  const hole = await blackhole(t)
  const a = await startBackend(t)
  const { port, logs } = await balance(t, [hole, a.spec], { connectTimeout: 200 })
  const ws = await open(t, port)
  t.equal((await roundTrip(ws, 'late')).data.toString(), 'late', 'a connect timeout is tried on the next upstream')
  t.match(logs[0], /marked down: .*SWITCHYARD_CONNECT_TIMEOUT/, 'and counts as a failure')
  const alone = await balance(t, [hole], { connectTimeout: 200 })
  const started = Date.now()
  const reply = await rawExchange(alone.port, handshake())
  t.match(reply, /^HTTP\/1\.1 504 Gateway Timeout\r\n/, 'the only upstream timing out: 504')
  t.ok(elapsed(started) >= 150 && elapsed(started) < 4000, `at the 200 ms connect timeout, not the 5 s default (${elapsed(started)} ms)`)
})

t.test('an upstream that fails after it got the handshake: 502 or 504, not retried', bounded, async t => {
  const a = await startBackend(t)
  const resets = await startRawUpstream(t, socket => socket.resetAndDestroy())
  const { port, logs } = await balance(t, [resets.spec, a.spec])
  t.match(
    await rawExchange(port, handshake()),
    /^HTTP\/1\.1 502 .*\r\n[^]*closed the connection without a complete answer\n$/,
    'a reset before the answer: 502',
  )
  t.equal(a.backend.websockets.clients.size, 0, 'not tried on the next upstream')
  t.match(logs[0], /marked down: .*ECONNRESET/, 'counted against the upstream')
  const silent = await startRawUpstream(t, () => {})
  const slow = await balance(t, [silent.spec], { timeout: 200 })
  t.match(await rawExchange(slow.port, handshake()), /^HTTP\/1\.1 504 Gateway Timeout\r\n/, 'no answer within the timeout: 504')
})

t.test('a non-101 answer goes to the client, and both connections close', bounded, async t => {
  const a = await startBackend(t)
  const { balancer, port } = await balance(t, [a.spec])
  const ws = new WebSocket(`ws://127.0.0.1:${port}/not-ws`)
  ws.on('error', () => {})
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage]
  t.equal(res.statusCode, 404, 'the client sees the upstream 404')
  res.resume()
  await once(res, 'end')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'nothing stays in flight')

  // http-proxy copies Transfer-Encoding over the body it has de-chunked: not any more.
  let upstreamSocket: Socket | undefined
  const chunked = await startRawUpstream(t, socket => {
    upstreamSocket = socket
    socket.write('HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\nKeep-Alive: timeout=5\r\n\r\n5\r\nnope!\r\n0\r\n\r\n')
  })
  const other = await balance(t, [chunked.spec])
  const reply = await rawExchange(other.port, handshake())
  t.match(reply, /^HTTP\/1\.1 404 Not Found\r\n/, 'a chunked 404 reaches the client')
  t.notMatch(reply, /transfer-encoding|keep-alive/i, 'without the framing headers of the upstream connection')
  t.match(reply, /\r\nconnection: close\r\n\r\nnope!$/i, 'with Connection: close and the body, ended by the close')
  if (!(upstreamSocket as Socket).closed) await once(upstreamSocket as Socket, 'close')
  t.pass('the upstream connection is closed too (node-http-proxy #783)')

  const cut = await startRawUpstream(t, socket => {
    socket.write('HTTP/1.1 404 Not Found\r\nContent-Length: 100\r\n\r\nshort')
    setImmediate(() => socket.resetAndDestroy())
  })
  const third = await balance(t, [cut.spec])
  t.match(await rawExchange(third.port, handshake()), /^HTTP\/1\.1 404 Not Found\r\n[^]*short$/, 'a 404 cut short closes the client')
})

t.test('closing the client closes the upstream side, even without a close frame', bounded, async t => {
  const up = await startWsUpstream(t)
  const { balancer, port, logged } = await balance(t, [up.spec])
  const ws = await open(t, port)
  const serverClosed = once(up.peers[0]?.ws as WebSocket, 'close')
  const line = logged()
  ws.terminate()
  const [code] = (await serverClosed) as [number]
  t.equal(code, 1006, 'the upstream sees the connection drop (1006: no close frame)')
  await line
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'inFlight is back to 0')
})

t.test('a client reset closes the upstream connection, which http-proxy would only half-close', bounded, async t => {
  // node-http-proxy #559 / #1510: on a client error it calls end() on the upstream socket,
  // which stays open, one descriptor per dropped WebSocket, for as long as the upstream does.
  const up = await startRaw101(t)
  const { port } = await balance(t, [up.spec])
  const client = connect(port, '127.0.0.1')
  client.write(handshake())
  await once(client, 'data')
  const upstreamSocket = up.sockets[0] as Socket
  const ended = once(upstreamSocket, 'end')
  // Not events.once: it would reject on the write's EPIPE, which is the point.
  const closed = new Promise(resolve => upstreamSocket.once('close', resolve))
  client.resetAndDestroy()
  await ended
  // More than a socket buffer holds: if the balancer's side were only half-closed, it would
  // take this in until its pipe to the dead client stalls, and nothing would close. Closed,
  // it answers with a reset and the upstream's next write fails.
  upstreamSocket.write(Buffer.alloc(16 << 20))
  await closed
  t.pass('the upstream connection is closed, not left half-open')
})

t.test('an upstream killing the WebSocket closes the client', bounded, async t => {
  const a = await startBackend(t)
  const { balancer, port } = await balance(t, [a.spec])
  const ws = await open(t, port)
  const closed = once(ws, 'close')
  for (const peer of a.backend.websockets.clients) peer.terminate()
  const [code] = (await closed) as [number]
  t.equal(code, 1006, 'the client sees the connection drop')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'inFlight is back to 0')
})

t.test('an upstream reset mid-stream closes the client, without a crash or a health mark', bounded, async t => {
  const raw = await startRaw101(t)
  const a = await startBackend(t)
  const { server, port, logs, logged } = await balance(t, [raw.spec, a.spec])
  const ws = await open(t, port)
  ws.on('error', () => {})
  const closed = once(ws, 'close')
  const line = logged()
  raw.sockets[0]?.resetAndDestroy()
  await closed
  t.pass('the client is closed')
  await line
  t.equal(await promisify(server.getConnections.bind(server))(), 0, 'the balancer holds no connection: nothing leaks')
  t.same(logs, [], 'a tunnel that breaks after the handshake is not held against the upstream')
  const next = await open(t, port)
  t.equal((await roundTrip(next, 'alive')).data.toString(), 'alive', 'the balancer carries on')
})

t.test('a client that goes away before the answer frees the upstream connection', bounded, async t => {
  const silent = await startRawUpstream(t, () => {})
  const upstreamSocket = once(silent.server, 'connection') as Promise<[Socket]>
  const { balancer, port, logged } = await balance(t, [silent.spec])
  const client = connect(port, '127.0.0.1')
  client.write(handshake())
  const [socket] = await upstreamSocket
  const line = logged()
  client.destroy()
  await once(socket, 'close')
  t.pass('the upstream connection is closed')
  t.match(await line, /^GET \/ws 499 /, 'logged as 499, as nginx does')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'inFlight is back to 0')

  const hole = await blackhole(t)
  const connecting = await balance(t, [hole], { connectTimeout: 5000 })
  const upgrading = once(connecting.server, 'upgrade')
  const early = connect(connecting.port, '127.0.0.1')
  const gone = connecting.logged()
  early.write(handshake())
  await upgrading
  t.equal(connecting.balancer.pool.upstreams[0]?.inFlight, 1, 'a handshake in progress counts in flight')
  early.destroy()
  t.match(await gone, /^GET \/ws 499 /, 'a client gone while the upstream connects is 499 too')
  t.equal(connecting.balancer.pool.upstreams[0]?.inFlight, 0, 'and frees its place')
  t.same(connecting.logs, [], 'without a mark against the upstream')
})

t.test('a tunnel that passes nothing for --tunnel-timeout is closed; one in use is not', bounded, async t => {
  const timeout = 500
  const pause = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))
  const up = await startWsUpstream(t)
  const { balancer, port } = await balance(t, [up.spec], { tunnelTimeout: timeout })
  const idle = await open(t, port)
  const busy = await open(t, port)
  const started = Date.now()
  let busyInUse = true
  let idleGone = false
  const idleClosed = once(idle, 'close').then(() => {
    idleGone = true
    return { after: elapsed(started), busyInUse }
  })
  // The busy one echoes a message every 20 ms until the idle one has closed and a whole timeout
  // more has passed: it goes quiet only for those 20 ms and a round trip, so only an event loop
  // stalled for the whole timeout could close it. One assertion, whatever number of pings it took.
  let pings = 0
  let echoed = 0
  let idleAt = Infinity
  for (let i = 0; i < 2000 && elapsed(started) < 16 * timeout && elapsed(started) < idleAt + timeout + 100; i++) {
    await pause(20)
    pings++
    if ((await roundTrip(busy, `ping ${i}`)).data.toString() === `ping ${i}`) echoed++
    if (idleGone && idleAt === Infinity) idleAt = elapsed(started)
  }
  t.ok(idleGone && echoed === pings, `the busy tunnel echoed all ${pings} pings, until a timeout after the idle one closed`)
  busyInUse = false
  const closed = await idleClosed
  t.ok(closed.after >= timeout - 50, `the idle one closed once the timeout had passed (${closed.after} ms)`)
  t.ok(closed.busyInUse, 'while the busy one was still in use')
  t.equal(busy.readyState, WebSocket.OPEN, 'the busy one is open')
  // Server-to-client traffic alone keeps a tunnel open too: the client socket sees both ways.
  const pushed = await open(t, port)
  const peer = up.peers.at(-1)?.ws as WebSocket
  const pushes = setInterval(() => peer.send('tick'), 100)
  t.teardown(() => clearInterval(pushes))
  await pause(2 * timeout + 200)
  t.equal(pushed.readyState, WebSocket.OPEN, 'a tunnel the upstream pushes to, silent client, stays open')
  clearInterval(pushes)
  await once(pushed, 'close')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 1, 'and once silent it closes too; only the busy one is left')
})

t.test('an open WebSocket holds a max_conns slot, and frees it for a waiting request', bounded, async t => {
  const a = await startBackend(t)
  const [host, upPort] = a.spec.split(':')
  const { port } = await balance(t, [], { upstreams: [{ host: host as string, port: Number(upPort), maxConns: 1 }] })
  const ws = await open(t, port)
  const reply = await rawExchange(port, handshake())
  t.match(reply, /^HTTP\/1\.1 503 [^]*every upstream is at max_conns\n$/, 'a second upgrade is refused at once: 503')
  const waiting = fetchText(port)
  ws.close(1000)
  t.equal((await waiting).status, 200, 'a request queued behind the WebSocket is served once it closes')
})

t.test('the sticky cookie pins an upgrade to its upstream', bounded, async t => {
  const a = await startBackend(t)
  const b = await startBackend(t)
  const dead = await closedPort()
  const sticky = new Sticky({ cookie: 'lb', secret: 'test secret' })
  const cookie = (id: string): Record<string, string> => ({ Cookie: sticky.setCookie(id, false).split(';')[0] as string })
  const { port } = await balance(t, [a.spec, b.spec, dead], { sticky: { cookie: 'lb', secret: 'test secret' } })
  await open(t, port, '/ws', cookie(b.spec))
  await open(t, port, '/ws', cookie(b.spec))
  t.equal(b.backend.websockets.clients.size, 2, 'both upgrades went to the pinned upstream')
  await open(t, port, '/ws', cookie('127.0.0.1:1'))
  t.equal(a.backend.websockets.clients.size, 1, 'a cookie naming no upstream falls back to the policy')
  await open(t, port, '/ws', cookie(dead))
  t.equal(a.backend.websockets.clients.size + b.backend.websockets.clients.size, 4, 'a pinned upstream that refuses is left for another')
})
