import { once } from 'node:events'
import type { IncomingMessage } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocket, type RawData } from 'ws'
import { createBackend, type Backend, type BackendOptions } from '../src/index.js'

async function start(t: Test, options: BackendOptions = {}): Promise<{ backend: Backend; port: number }> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  return { backend, port: (backend.address() as AddressInfo).port }
}

/** An open WebSocket client, closed at teardown if the test left it open. */
async function open(t: Test, url: string): Promise<WebSocket> {
  const ws = new WebSocket(url)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  return ws
}

/** Sends one message and resolves with the next one received. */
async function roundTrip(ws: WebSocket, data: string | Buffer): Promise<{ data: RawData; isBinary: boolean }> {
  const reply = once(ws, 'message') as Promise<[RawData, boolean]>
  ws.send(data)
  const [received, isBinary] = await reply
  return { data: received, isBinary }
}

/** Sends `data` on a raw connection and resolves with all it reads until the backend closes it. */
async function raw(port: number, data: string | Buffer, then?: Buffer): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  let reply = ''
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => {
    // The rest goes once the handshake is answered, as a client would send it.
    if (then !== undefined && reply === '') socket.write(then)
    reply += d
  })
  socket.write(data)
  await once(socket, 'close')
  return reply
}

const HANDSHAKE =
  'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n'

t.test('/ws echoes text as text and binary as binary', async t => {
  const { backend, port } = await start(t)
  const ws = await open(t, `ws://127.0.0.1:${port}/ws?room=1`)
  t.equal(backend.websockets.clients.size, 1, 'the backend tracks the open WebSocket')
  for (const text of ['hello', 'second message', 'ü€ unicode']) {
    const reply = await roundTrip(ws, text)
    t.equal(reply.isBinary, false, `"${text}" comes back as text`)
    t.equal(reply.data.toString(), text, `"${text}" comes back unchanged`)
  }
  const bytes = Buffer.from([0, 1, 2, 253, 254, 255])
  const reply = await roundTrip(ws, bytes)
  t.equal(reply.isBinary, true, 'binary comes back as binary')
  t.same(reply.data, bytes, 'with the same bytes')
  ws.close(1000, 'done')
  const [code] = (await once(ws, 'close')) as [number]
  t.equal(code, 1000, 'the closing handshake completes')
})

t.test('an upgrade on another path gets 404 and the socket closes', async t => {
  const { port } = await start(t)
  const ws = new WebSocket(`ws://127.0.0.1:${port}/not-ws`)
  ws.on('error', () => {})
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, IncomingMessage]
  t.equal(res.statusCode, 404, 'the ws client sees 404')
  res.resume()

  // A raw client sees the whole answer and then the close, without closing its own side.
  const reply = await raw(port, HANDSHAKE.replace('/ws', '/'))
  t.match(reply, /^HTTP\/1\.1 404 Not Found\r\n/, 'the raw client reads the 404 status line')
  t.match(reply, /Connection: close\r\n/, 'with Connection: close')
  t.match(reply, /\r\nX-Content-Type-Options: nosniff\r\n/, 'and nosniff, as every text answer of the backend')
  t.match(reply, /served on \/ws only\n$/, 'and a body that says where WebSockets are')
})

t.test('ws refuses a bad handshake on /ws, and a client breaking the protocol does not crash the backend', async t => {
  const { port } = await start(t)
  const refused = await raw(port, HANDSHAKE.replace('GET', 'POST'))
  t.match(refused, /^HTTP\/1\.1 405 /, 'a POST upgrade gets 405')

  // RFC 6455 §5.1: a client must mask its frames. This one is unmasked: ws emits 'error'
  // and closes with 1002 (protocol error).
  const broken = await raw(port, HANDSHAKE, Buffer.from([0x81, 0x02, 0x68, 0x69]))
  t.match(broken, /^HTTP\/1\.1 101 Switching Protocols\r\n/, 'the handshake succeeds')
  t.ok(broken.endsWith('\x88\x02\x03\xea'), 'then a close frame with code 1002 (protocol error) comes back')

  const ws = await open(t, `ws://127.0.0.1:${port}/ws`)
  t.equal((await roundTrip(ws, 'still up')).data.toString(), 'still up', 'the backend still echoes afterwards')
})

t.test('closing the backend closes its WebSockets with 1001 going away', async t => {
  const backend = createBackend()
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  const { port } = backend.address() as AddressInfo
  const ws = await open(t, `ws://127.0.0.1:${port}/ws`)
  const closed = new Promise<void>(resolve => backend.close(() => resolve()))
  const [code] = (await once(ws, 'close')) as [number]
  t.equal(code, 1001, 'the client is told the server is going away')
  await closed
  t.equal(backend.listening, false, 'and the backend finishes closing')
})

/** Resolves with the close code the client gets. */
async function closed(ws: WebSocket): Promise<{ code: number }> {
  const [code] = (await once(ws, 'close')) as [number]
  return { code }
}

const MIB = 1024 * 1024

t.test('a message of 1 MiB is echoed; one byte more closes the WebSocket with 1009', async t => {
  const { backend, port } = await start(t)
  const ws = await open(t, `ws://127.0.0.1:${port}/ws`)
  const full = Buffer.alloc(MIB, 7)
  const reply = await roundTrip(ws, full)
  t.equal((reply.data as Buffer).length, MIB, 'exactly 1 MiB, the default bound: echoed in full')
  const closing = closed(ws)
  ws.send(Buffer.alloc(MIB + 1, 7))
  t.equal((await closing).code, 1009, '1 MiB + 1: closed with 1009, message too big')
  const other = await open(t, `ws://127.0.0.1:${port}/ws`)
  t.equal((await roundTrip(other, 'next')).data.toString(), 'next', 'another WebSocket still echoes')
  t.equal(backend.websockets.clients.size, 1, 'the closed one is gone from the backend')
})

t.test('wsMaxMessage bounds a message across its fragments too', async t => {
  const { port } = await start(t, { wsMaxMessage: 1024 })
  const ws = await open(t, `ws://127.0.0.1:${port}/ws`)
  t.equal((await roundTrip(ws, 'x'.repeat(1024))).data.toString().length, 1024, '1024 bytes of text: echoed')
  const closing = closed(ws)
  // Two frames of 600 bytes, each under the bound, make one message of 1200.
  ws.send(Buffer.alloc(600, 1), { fin: false })
  ws.send(Buffer.alloc(600, 2), { fin: true })
  t.equal((await closing).code, 1009, 'fragments adding up to 1200 bytes: closed with 1009')
})
