import { once } from 'node:events'
import { connect, constants, createSecureServer, type ClientHttp2Session, type Http2SecureServer } from 'node:http2'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { watchSession, type H2SessionLimits, type SessionAbuse } from '../../src/server/h2-session.js'
import { issue, makeCa, type TestCa } from '../fixtures/certs.js'
import { rapidReset } from '../fixtures/h2-raw.js'

const LIMITS: H2SessionLimits = { maxStreams: 128, firstRequestTimeout: 10_000, idleTimeout: 10_000 }

/** A watched HTTP/2 server over real TLS on port 0; `hold` requests wait for `release()`. */
async function start(t: Test, limits: H2SessionLimits) {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['localhost'] })
  const abuses: SessionAbuse[] = []
  const held: (() => void)[] = []
  const server: Http2SecureServer = createSecureServer({ ...leaf.pem, settings: { maxConcurrentStreams: limits.maxStreams } })
  server.on('session', session => watchSession(session, limits, a => abuses.push(a)))
  server.on('request', (req, res) => {
    if (req.url === '/hold') held.push(() => res.end('held'))
    else if (req.url === '/destroy') res.destroy()
    else res.end('ok')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const clients: ClientHttp2Session[] = []
  t.teardown(() => {
    for (const c of clients) c.destroy()
    server.close()
  })
  const client = (): ClientHttp2Session => {
    const c = connect(`https://localhost:${(server.address() as AddressInfo).port}`, { ca: ca.pem, peerMaxConcurrentStreams: 20_000 })
    c.on('error', () => {})
    clients.push(c)
    return c
  }
  return { abuses, held, client, ca: ca as TestCa, port: (server.address() as AddressInfo).port }
}

/** One GET on `c`: its status, or the error code that ended it. */
async function get(c: ClientHttp2Session, path = '/'): Promise<number | string> {
  const stream = c.request({ ':path': path }, { endStream: true })
  return new Promise(resolve => {
    stream.on('response', h => resolve(h[':status'] as number))
    stream.on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)))
    stream.on('close', () => resolve(`closed with ${stream.rstCode}`))
    stream.resume()
  })
}

t.test('rapid reset: 10,000 streams opened and reset on one connection close it; another client is served', async t => {
  const { abuses, client, port, ca } = await start(t, LIMITS)
  const attack = await rapidReset(port, ca.pem, { count: 10_000 })
  // The GOAWAY (ENHANCE_YOUR_CALM) goes out first, but the attacker is still writing when the
  // socket closes, so the kernel resets the connection and may drop it before it is read.
  t.ok(attack.closed, `the server closed the connection (after ${attack.opened} streams were sent)`)
  t.ok(attack.opened < 10_000, 'before all 10,000 were sent')
  t.equal(abuses.length, 1, 'reported once')
  t.equal(abuses[0]?.kind, 'rapid-reset', 'as rapid reset')
  t.ok((abuses[0]?.resets ?? 0) > 2 * LIMITS.maxStreams, 'once the burst of 2 × max streams was spent')
  t.ok((abuses[0]?.resets ?? 0) < 3 * LIMITS.maxStreams, 'and soon after')
  t.equal(abuses[0]?.address, '127.0.0.1', "with the client's address")
  t.equal(await get(client()), 200, 'a second client is served')
})

t.test('streams the server ends itself, and completed ones, cost nothing', async t => {
  const { abuses, client } = await start(t, { ...LIMITS, maxStreams: 8 })
  const c = client()
  for (let i = 0; i < 40; i++) await get(c, '/destroy')
  for (let i = 0; i < 40; i++) t.equal(await get(c), 200, `request ${i} served`)
  t.same(abuses, [], 'nothing reported')
  t.notOk(c.closed, 'the connection is open')
})

t.test('resets are earned back over time', async t => {
  const { abuses, client } = await start(t, { ...LIMITS, maxStreams: 10 })
  const c = client()
  // 20 fit in the burst (2 × 10); the refill is 1 per second (10 / 10).
  const reset = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      const stream = c.request({ ':path': '/hold' }, { endStream: true })
      stream.on('error', () => {})
      // Sent before it is reset: once it has an id ('ready', which a connected session emits at once).
      if (stream.pending) await once(stream, 'ready')
      stream.close(constants.NGHTTP2_CANCEL)
      await once(stream, 'close')
    }
  }
  await reset(20)
  t.equal(await get(c), 200, 'the burst spent, the connection still serves')
  // A bounded wait: the refill is a matter of time, and no event says a token came back.
  await sleep(1500)
  await reset(1)
  t.same(abuses, [], 'one more after a second is within the refill')
  t.notOk(c.destroyed, 'still open')
  await reset(2)
  t.equal(abuses.length, 1, 'two more at once are not')
})

t.test('a connection with no request closes after the first-request timeout', async t => {
  const { client } = await start(t, { ...LIMITS, firstRequestTimeout: 100 })
  const c = client()
  const [code] = (await once(c, 'goaway')) as [number]
  t.equal(code, constants.NGHTTP2_NO_ERROR, 'a polite GOAWAY')
  await once(c, 'close')
  t.pass('and the connection closed')
})

t.test('an idle connection closes after the idle timeout; a stream in flight keeps it open', async t => {
  const { client, held } = await start(t, { ...LIMITS, idleTimeout: 100 })
  const c = client()
  const answer = get(c, '/hold')
  while (held.length === 0) await new Promise(resolve => setImmediate(resolve))
  // Longer than the idle timeout, with a stream in flight: nothing may close it.
  await sleep(300)
  t.notOk(c.closed, 'open while the request is in flight')
  held[0]?.()
  t.equal(await answer, 200, 'the held request is answered')
  const goaway = once(c, 'goaway')
  await once(c, 'close')
  t.ok(await goaway, 'then, idle, it got GOAWAY and closed')
})
