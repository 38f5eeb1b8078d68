import t from 'tap'
// The request body: held while it streams, so that a request refused or reset upstream can be sent again.
import { HOLD_LIMIT } from '../../src/forward/replay-body.js'
import { closedPort, fetchText, startBalancer, startRawUpstream, startUpstream, sha256 } from '../fixtures/servers.js'

/** An upstream that reads a request in full, then resets the connection without answering. */
async function resettingUpstream(t: Parameters<typeof startRawUpstream>[0]) {
  return startRawUpstream(t, (socket, received) => {
    const head = received.indexOf('\r\n\r\n')
    if (head < 0) return
    const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0)
    if (received.length - head - 4 >= length) socket.resetAndDestroy()
  })
}

t.test('a POST to a refused upstream arrives once elsewhere with its body intact', async t => {
  const dead = await closedPort()
  const a = await startUpstream(t, 'a', (_req, res, seen) => res.end(seen.sha256))
  const { port } = await startBalancer(t, [dead, a.spec])
  const body = Buffer.alloc(3 * 1024 * 1024, 'payload-')
  const reply = await fetchText(port, { method: 'POST', path: '/orders', body })
  t.equal(reply.status, 200, 'answered 200')
  t.equal(reply.body, sha256(body), 'the body arrived byte for byte')
  t.equal(a.seen.length, 1, 'and arrived once')
})

t.test('idempotent requests that reached a resetting upstream are retried', async t => {
  const reset = await resettingUpstream(t)
  const b = await startUpstream(t, 'b', (_req, res, seen) => res.end(`${seen.method} ${seen.sha256}`))
  // A fresh balancer for each request, so round-robin tries the resetting upstream first.
  const send = async (options: Parameters<typeof fetchText>[1]) => fetchText((await startBalancer(t, [reset.spec, b.spec])).port, options)
  const get = await send({ path: '/a' })
  t.equal(get.status, 200, 'GET retried: 200')
  const small = Buffer.alloc(HOLD_LIMIT, 's')
  const put = await send({ method: 'PUT', path: '/b', body: small })
  t.equal(put.status, 200, 'PUT with a held body retried: 200')
  t.equal(put.body, `PUT ${sha256(small)}`, 'the held body was replayed intact')
  const large = Buffer.alloc(HOLD_LIMIT + 1, 'l')
  const big = await send({ method: 'PUT', path: '/c', body: large })
  t.equal(big.status, 502, 'PUT with a body too large to hold: 502, not retried')
  t.equal(reset.connections, 3, 'each request reached the resetting upstream first')
  t.same(
    b.seen.map(s => `${s.method} ${s.url}`),
    ['GET /a', 'PUT /b'],
    'the second upstream got only the retried requests',
  )
})
