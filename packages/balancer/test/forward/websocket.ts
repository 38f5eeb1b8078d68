// The upgrade handler: which upgrades become tunnels, which are answered, and what a drain does to open tunnels.
import { once } from 'node:events'
import { connect, type Socket } from 'node:net'
import { promisify } from 'node:util'
import t from 'tap'
import { rawExchange } from '../fixtures/servers.js'
import { balance, bounded, elapsed, handshake, open, roundTrip, startBackend, startWsUpstream } from '../fixtures/websockets.js'

t.test('drain waits for open WebSockets, then closes them at its timeout', bounded, async t => {
  const a = await startBackend(t)
  const { balancer, port } = await balance(t, [a.spec])
  const ws = await open(t, port)
  const closed = once(ws, 'close')
  const started = Date.now()
  const drained = balancer.drain(400)
  t.equal((await roundTrip(ws, 'still')).data.toString(), 'still', 'the WebSocket works while draining')
  await drained
  t.ok(elapsed(started) >= 350, `drain waited for its timeout (${elapsed(started)} ms)`)
  const [code] = (await closed) as [number]
  t.equal(code, 1006, 'then cut the WebSocket')
  t.notOk(balancer.listening, 'and the balancer is closed')
})

t.test('an upgrade that arrives while the balancer drains is refused with 503', bounded, async t => {
  const up = await startWsUpstream(t)
  const { balancer, server, port } = await balance(t, [up.spec])
  // Half a handshake: the connection is busy with a request, so draining does not close it.
  // Read by the balancer's parser first: its listener on the socket runs before this one.
  const read = new Promise<void>(resolve => server.once('connection', (s: Socket) => s.once('data', () => resolve())))
  const socket = connect(port, '127.0.0.1')
  socket.setEncoding('latin1')
  const [first, rest] = [handshake().slice(0, 20), handshake().slice(20)]
  socket.write(first)
  await read
  const drained = balancer.drain(5000)
  let reply = ''
  socket.on('data', (d: string) => (reply += d))
  socket.write(rest)
  await once(socket, 'close')
  t.match(reply, /^HTTP\/1\.1 503 Service Unavailable\r\n[^]*Connection: close\r\n[^]*shutting down/, '503, and the connection closes')
  t.equal(up.peers.length, 0, 'the upstream never saw it')
  await drained
})

t.test('drain resolves as soon as the last WebSocket closes', bounded, async t => {
  const a = await startBackend(t)
  const { balancer, port } = await balance(t, [a.spec])
  const ws = await open(t, port)
  const started = Date.now()
  const drained = balancer.drain(8000)
  ws.close(1000)
  await drained
  t.ok(elapsed(started) < 4000, `drain ended with the WebSocket, not at its timeout (${elapsed(started)} ms)`)
})

t.test('what is not a WebSocket upgrade is answered, not proxied', bounded, async t => {
  const a = await startBackend(t)
  const { server, port } = await balance(t, [a.spec])
  const h2c =
    'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n'
  t.match(await rawExchange(port, h2c), /^HTTP\/1\.1 501 Not Implemented\r\n[^]*only WebSocket upgrades/, 'h2c: 501')
  t.match(await rawExchange(port, handshake().replace('GET', 'POST')), /^HTTP\/1\.1 501 /, 'a POST upgrade: 501')
  const twoHosts = handshake('/ws', 'Host: y\r\n')
  t.match(await rawExchange(port, twoHosts), /^HTTP\/1\.1 400 Bad Request\r\n[^]*more than one Host header/, 'two Host headers: 400')
  t.equal(a.backend.websockets.clients.size, 0, 'none reached the upstream')
  t.equal(await promisify(server.getConnections.bind(server))(), 0, 'and the balancer closed each connection')
})
