import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import { connect } from 'node:net'
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { blackhole, closedPort, fetchText, rawExchange, startBalancer, startRawUpstream, startUpstream } from './fixtures/servers.js'

const elapsed = (start: number): number => Date.now() - start

t.test('a connect timeout is tried on the next upstream, and is 504 when none is left', async t => {
  const hole = await blackhole(t)
  const a = await startUpstream(t, 'a')
  const { port, logs } = await startBalancer(t, [hole, a.spec], { connectTimeout: 300 })
  const post = await fetchText(port, { method: 'POST', body: 'once' })
  t.equal(post.status, 200, 'a POST is retried after a connect timeout: it was never sent')
  t.equal(a.seen[0]?.bytes, 4, 'with its body')
  t.match(logs[0], /marked down: .*SWITCHYARD_CONNECT_TIMEOUT/, 'and the timeout counts as a failure')
  const alone = await startBalancer(t, [hole], { connectTimeout: 300 })
  const started = Date.now()
  const reply = await fetchText(alone.port)
  t.equal(reply.status, 504, 'the only upstream timing out: 504')
  // Late timers only make it later; the bound tells 300 ms from the 5 s default.
  t.ok(elapsed(started) >= 250 && elapsed(started) < 4000, `at the 300 ms connect timeout, not the 5 s default (${elapsed(started)} ms)`)
})

t.test('--retries and --retry-timeout bound the tries', async t => {
  const [x, y] = [await closedPort(), await closedPort()]
  const a = await startUpstream(t, 'a')
  const none = await startBalancer(t, [x, y, a.spec], { retries: 1, maxFails: 0 })
  const reply = await fetchText(none.port)
  t.equal(reply.status, 502, 'retries=1: two refused tries, then 502, though a third upstream is up')
  t.equal(a.seen.length, 0, 'the third was not tried')
  const hole = await blackhole(t)
  const capped = await startBalancer(t, [hole, a.spec], { connectTimeout: 300, retryTimeout: 200 })
  t.equal((await fetchText(capped.port)).status, 504, 'past the retry timeout no new try starts: 504')
  t.equal(a.seen.length, 0, 'the second upstream was not tried')
})

t.test('--retry-on-timeout tries a GET on the next upstream after a response timeout', async t => {
  const silent = await startRawUpstream(t, () => {})
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [silent.spec, a.spec], { timeout: 200, retryOnTimeout: true })
  t.equal((await fetchText(port)).status, 200, 'GET: 200 from the second')
  const fresh = await startBalancer(t, [silent.spec, a.spec], { timeout: 200, retryOnTimeout: true })
  t.equal((await fetchText(fresh.port, { method: 'POST', body: 'x' })).status, 504, 'POST: still 504, never sent twice')
})

t.test('an upstream that stalls mid-body is cut after the timeout and counted', async t => {
  const stall = await startUpstream(t, 's', (_req, res) => {
    res.writeHead(200, { 'content-length': 100 })
    res.write('part')
  })
  const { port, logs } = await startBalancer(t, [stall.spec], { timeout: 300 })
  const started = Date.now()
  const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
  t.match(reply, /\r\n\r\npart$/, 'the client got what there was, then the connection closed')
  t.ok(elapsed(started) >= 250 && elapsed(started) < 10_000, `at the 300 ms timeout, not the 60 s default (${elapsed(started)} ms)`)
  t.match(logs[0], 'last: response timeout', 'counted as a response timeout')
})

// An upstream in a thread of its own, which the test's stalled event loop does not stall: it
// answers `first` at once, then `-last` when flags[0] is set, and sets flags[1] once that is
// written. Plain JavaScript: a worker runs what it is given without tap's TypeScript loader.
const STALL_UPSTREAM = `
const { parentPort, workerData } = require('node:worker_threads')
const { createServer } = require('node:http')
const flags = new Int32Array(workerData.shared)
const server = createServer((req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 10 })
  res.write('first', () => {
    Atomics.wait(flags, 0, 0)
    res.end('-last', () => {
      Atomics.store(flags, 1, 1)
      Atomics.notify(flags, 1)
    })
  })
})
server.listen(0, '127.0.0.1', () => parentPort.postMessage(server.address().port))
`

t.test('a read timer that runs out while the event loop is stalled, with the bytes already in, is no timeout', async t => {
  const shared = new SharedArrayBuffer(12)
  const flags = new Int32Array(shared)
  const worker = new Worker(STALL_UPSTREAM, { eval: true, workerData: { shared } })
  t.teardown(() => worker.terminate())
  const [upstreamPort] = (await once(worker, 'message')) as [number]
  const { port, logs } = await startBalancer(t, [`127.0.0.1:${upstreamPort}`], { timeout: 300 })
  const req = request({ host: '127.0.0.1', port, agent: false })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  res.setEncoding('utf8')
  let body = ''
  res.on('data', (chunk: string) => (body += chunk))
  // `first` came through: the balancer armed its 300 ms read timer before it passed it on.
  while (body === '') await once(res, 'data')
  const armedBy = performance.now()
  // The upstream sends the rest; this thread waits until it is written (10 s: only a real
  // failure waits that long), then blocks past the timer, as a stalled event loop would.
  Atomics.store(flags, 0, 1)
  Atomics.notify(flags, 0)
  // 'not-equal' when it was written before this thread began to wait: either way, it is written.
  Atomics.wait(flags, 1, 0, 10_000)
  t.equal(Atomics.load(flags, 1), 1, 'the upstream wrote the rest while this thread was blocked')
  const left = 300 + 100 - (performance.now() - armedBy)
  if (left > 0) Atomics.wait(flags, 2, 0, left)
  // Back in the event loop: the timer is due, and the bytes are in the socket.
  await once(res, 'close')
  t.ok(res.complete, 'the response came whole, not cut at the timer')
  t.equal(body, 'first-last', 'every byte')
  t.same(logs, [], 'no timeout counted against the upstream')
})

t.test('a slow client is not an upstream timeout', async t => {
  const size = 32 * 1024 * 1024
  const big = await startUpstream(t, 'big', (_req, res) => {
    res.writeHead(200, { 'content-length': size })
    res.end(Buffer.alloc(size, 'z'))
  })
  const { port, logs } = await startBalancer(t, [big.spec], { timeout: 200 })
  const req = request({ host: '127.0.0.1', port, agent: false })
  req.end()
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  res.pause()
  // Stop reading for well over the timeout: buffers fill and the balancer waits on us.
  await new Promise(resolve => setTimeout(resolve, 800))
  let bytes = 0
  res.on('data', (chunk: Buffer) => (bytes += chunk.length))
  res.resume()
  await once(res, 'end')
  t.equal(bytes, size, 'every byte arrived')
  t.equal(logs.length, 0, 'no timeout was counted')
})

t.test('a client that stalls its body gets 408 and the upstream request is aborted', async t => {
  let aborted: () => void = () => {}
  const gone = new Promise<void>(resolve => (aborted = resolve))
  const a = await startUpstream(t, 'a')
  // The default fixture waits for the whole body; this one notices the abort.
  a.seen.length = 0
  const listener = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.on('close', aborted)
  })
  const { port, logs } = await startBalancer(t, [listener.spec], { clientBodyTimeout: 300 })
  const started = Date.now()
  const reply = await rawExchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some')
  t.match(reply, /^HTTP\/1\.1 408 /, '408')
  t.match(reply, /Connection: close/i, 'and the connection closes')
  t.ok(elapsed(started) >= 250 && elapsed(started) < 10_000, `at the 300 ms body timeout, not the 60 s default (${elapsed(started)} ms)`)
  await gone
  t.equal(logs.length, 0, 'not counted against the upstream')
})

t.test('a slowloris client gets 408 at the header timeout', async t => {
  const a = await startUpstream(t, 'a')
  const { port } = await startBalancer(t, [a.spec], { clientHeaderTimeout: 1000 })
  const socket = connect(port, '127.0.0.1')
  socket.write('GET / HTTP/1.1\r\nHost: x\r\n')
  const drip = setInterval(() => socket.write('X-Drip: 1\r\n'), 200)
  let received = ''
  socket.on('data', d => (received += String(d)))
  const started = Date.now()
  await once(socket, 'close')
  clearInterval(drip)
  t.match(received, /^HTTP\/1\.1 408 /, '408 Request Timeout')
  t.ok(
    elapsed(started) >= 800 && elapsed(started) < 10_000,
    `at the 1 s header timeout (checked every second), not the 20 s default (${elapsed(started)} ms)`,
  )
  t.equal(a.seen.length, 0, 'nothing reached the upstream')
})

t.test('a kept-alive connection reset as it is reused is resent once on a new connection, and not counted', async t => {
  // Answers the first request on a connection, then resets when the next one arrives on
  // it: the race of an upstream closing an idle connection just as the balancer reuses it.
  const racy = await startRawUpstream(t, (socket, received) => {
    const requests = received.split('\r\n\r\n').length - 1
    if (requests === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Served-By: racy\r\n\r\nracy!')
    else socket.resetAndDestroy()
  })
  const a = await startUpstream(t, 'a')
  const { port, logs } = await startBalancer(t, [racy.spec, a.spec])
  const order: string[] = []
  for (let i = 0; i < 4; i++) {
    const reply = await fetchText(port)
    order.push(`${reply.status} ${reply.headers['x-served-by']}`)
  }
  // As nginx does: the same upstream again, on a new connection, rather than the next one.
  t.same(order, ['200 racy', '200 a', '200 racy', '200 a'], 'the GET that hit the reset was resent to racy')
  t.equal(racy.connections, 2, 'the reset came on the reused connection, the resend on a new one')
  t.equal(logs.length, 0, 'the race is not held against the upstream')
})
