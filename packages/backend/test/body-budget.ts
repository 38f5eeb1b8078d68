import { once } from 'node:events'
import { connect, type AddressInfo, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { BodyBudget } from '../src/body-budget.js'
import type { BackendOptions } from '../src/config.js'
import { createBackend, type Backend } from '../src/server.js'

const KIB = 1024
const MIB = 1024 * KIB
/** Longest wait for the backend to reach a state; only a real failure gets there. */
const DEADLINE_MS = 10_000

async function start(t: Test, options: BackendOptions = {}): Promise<{ backend: Backend; base: string; port: number }> {
  const backend = createBackend(options)
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => {
    backend.closeAllConnections()
    return new Promise<void>(resolve => backend.close(() => resolve()))
  })
  const { port } = backend.address() as AddressInfo
  return { backend, base: `http://127.0.0.1:${port}`, port }
}

/** Resolves once `done()` holds, checking every few ms; rejects past the deadline, saying what it waited for. */
async function until(what: string, done: () => boolean): Promise<void> {
  const deadline = performance.now() + DEADLINE_MS
  while (!done()) {
    if (performance.now() > deadline) throw new Error(`gave up waiting for ${what}`)
    await sleep(5)
  }
}

interface Upload {
  socket: Socket
  /** All the backend sent back, as latin1. */
  reply: () => string
  /** Whether the connection has closed, by either side. */
  closed: () => boolean
}

/**
 * A raw upload: `POST /echo` declaring `declared` bytes, then `sent` bytes of body, and no
 * more: the request stays unfinished until the socket is closed (or the backend refuses it).
 */
function upload(t: Test, port: number, declared: number, sent: Buffer): Upload {
  const socket = connect(port, '127.0.0.1')
  let reply = ''
  let closed = false
  socket.setEncoding('latin1')
  socket.on('data', (d: string) => (reply += d))
  // A refused upload may be reset while it is still sending: that is the refusal, not a fault.
  socket.on('error', () => {})
  socket.on('close', () => (closed = true))
  socket.write(`POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: ${declared}\r\n\r\n`)
  socket.write(sent)
  t.teardown(() => void socket.destroy())
  return { socket, reply: () => reply, closed: () => closed }
}

t.test('BodyBudget counts what accounts take, refuses past the limit, and takes back on release', async t => {
  const budget = new BodyBudget(100)
  const a = budget.open()
  const b = budget.open()
  t.equal(a.take(60), true, 'a takes 60 of 100')
  t.equal(b.take(41), false, 'b may not take 41: that would make 101')
  t.equal(budget.held, 60, 'a refused take counts nothing')
  t.equal(b.take(40), true, 'b takes the 40 left')
  t.same([budget.held, budget.peak], [100, 100], 'the bound is reached, not passed')
  t.equal(a.take(1), false, 'a full budget refuses even one byte')
  a.release()
  t.same([budget.held, budget.peak], [40, 100], "a's 60 are back; the peak stays")
  a.release()
  t.equal(budget.held, 40, 'a second release gives back nothing more')
  t.equal(a.take(10), true, 'a released account may count again')
  b.release()
  a.release()
  t.same([budget.held, budget.limit], [0, 100], 'all given back')
})

t.test('stalled uploads fill the bound: the next upload gets 503, and once they close uploads work again', async t => {
  const lines: string[] = []
  const { backend, base, port } = await start(t, { maxBodyBytesTotal: 64 * KIB, accessLog: line => lines.push(line) })
  t.equal(backend.bodies.limit, 64 * KIB, 'the bound is the option given')
  // Four uploads declare 32 KiB each, send 16 KiB, and stall: 64 KiB held, the whole bound.
  const stalled = Array.from({ length: 4 }, () => upload(t, port, 32 * KIB, Buffer.alloc(16 * KIB, 's')))
  await until('the four stalled bodies to be held', () => backend.bodies.held === 64 * KIB)

  const refused = await fetch(`${base}/echo`, { method: 'POST', body: 'one more' })
  t.equal(refused.status, 503, 'the next upload: 503')
  t.equal(
    await refused.text(),
    `Service Unavailable: request bodies held at once would pass ${64 * KIB} bytes; try again later`,
    'one text line that names the bound',
  )
  t.equal(refused.headers.get('content-type'), 'text/plain; charset=utf-8', 'as text/plain')
  t.equal(refused.headers.get('connection'), 'close', 'with Connection: close, so the client stops sending')
  t.equal(refused.headers.get('x-content-type-options'), 'nosniff', 'and nosniff')
  t.equal(backend.bodies.held, 64 * KIB, 'the refused upload holds nothing')
  const hello = await fetch(`${base}/`)
  t.equal(hello.status, 200, 'a request without a body to buffer is still served')
  t.ok(
    stalled.every(u => !u.closed() && u.reply() === ''),
    'the stalled uploads are still open, unanswered',
  )

  for (const u of stalled) u.socket.destroy()
  await until('the stalled bodies to be given back', () => backend.bodies.held === 0)
  const ok = await fetch(`${base}/echo`, { method: 'POST', body: 'x'.repeat(60 * KIB) })
  t.equal(ok.status, 200, 'after they closed: an upload of 60 KiB is echoed')
  t.equal(ok.headers.get('x-echo-bytes'), String(60 * KIB), 'in full')
  await until('the echoed body to be given back', () => backend.bodies.held === 0)
  t.equal(backend.bodies.peak, 64 * KIB, 'never more than the bound held at once')
  await until('the four aborted uploads to be logged', () => lines.filter(l => l.startsWith('POST /echo 400 ')).length === 4)
  t.equal(lines.filter(l => l.startsWith('POST /echo 503 ')).length, 1, 'one 503 in the access log')
})

t.test('a body is given back when its request ends: answered, refused with 413, or aborted', async t => {
  const { backend, base, port } = await start(t, { maxBodyBytes: 8 * KIB, maxBodyBytesTotal: 64 * KIB })
  const answered = await fetch(`${base}/echo`, { method: 'PUT', body: 'a'.repeat(8 * KIB) })
  t.equal(answered.status, 200, 'a body at the per-request limit: echoed')
  await answered.arrayBuffer()
  await until('the echoed body to be given back', () => backend.bodies.held === 0)
  t.equal(backend.bodies.peak, 8 * KIB, 'it was held while the request ran')

  const tooLarge = upload(t, port, 16 * KIB, Buffer.alloc(6 * KIB, 'b'))
  await until('6 KiB to be held', () => backend.bodies.held === 6 * KIB)
  tooLarge.socket.write(Buffer.alloc(6 * KIB, 'b'))
  await until('the 413 and the close', () => tooLarge.closed())
  t.match(tooLarge.reply(), /^HTTP\/1\.1 413 Payload Too Large\r\n/, 'past the per-request limit: 413')
  t.equal(backend.bodies.held, 0, 'and its bytes are given back')

  const aborted = upload(t, port, 16 * KIB, Buffer.alloc(4 * KIB, 'c'))
  await until('4 KiB to be held', () => backend.bodies.held === 4 * KIB)
  aborted.socket.destroy()
  await until('the aborted body to be given back', () => backend.bodies.held === 0)
  t.pass('an aborted upload gives its bytes back')
})

t.test('thirty unfinished 9 MiB uploads, one after another: the backend holds at most 64 MiB of them', async t => {
  // Issue 11: 30 bodies of 9 MiB took RSS from 96 to 336 MB. With the default bound, 64 MiB,
  // seven fit (63 MiB); each later one is refused once its bytes would pass the bound.
  const lines: string[] = []
  const { backend } = await start(t, { accessLog: line => lines.push(line) })
  const { port } = backend.address() as AddressInfo
  const body = Buffer.alloc(9 * MIB - 1, 'r')
  const outcomes: string[] = []
  for (let i = 0; i < 30; i++) {
    const before = backend.bodies.held
    const u = upload(t, port, 9 * MIB, body)
    await until(`upload ${i + 1} to be held or refused`, () => backend.bodies.held === before + body.length || u.closed())
    outcomes.push(u.closed() ? 'refused' : 'held')
  }
  t.same(outcomes, [...Array(7).fill('held'), ...Array(23).fill('refused')], 'the first seven held, the next 23 refused')
  t.equal(backend.bodies.held, 7 * body.length, 'what is held: seven bodies, nothing of the refused ones')
  t.ok(backend.bodies.peak <= 64 * MIB, `never more than 64 MiB held at once (peak ${backend.bodies.peak} bytes)`)
  t.equal(lines.filter(l => l.startsWith('POST /echo 503 ')).length, 23, 'each refusal was a 503')
})
