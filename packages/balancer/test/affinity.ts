// Policies, the max_conns queue and sticky cookies through a real balancer and real upstreams.
import { request } from 'node:http'
import t from 'tap'
import { fetchText, startBalancer, startUpstream, type Handler } from './fixtures/servers.js'

const wait = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

/** An upstream that holds each request `ms` and records how many it held at once. */
async function slowCounting(t: Parameters<typeof startUpstream>[0], name: string, ms: number) {
  const stats = { now: 0, max: 0 }
  const handler: Handler = (_req, res) => {
    stats.now++
    stats.max = Math.max(stats.max, stats.now)
    setTimeout(() => {
      stats.now--
      res.end(name)
    }, ms)
  }
  return { up: await startUpstream(t, name, handler), stats }
}

const spec = (port: number, extra: object = {}) => ({ host: '127.0.0.1', port, ...extra })

t.test('weights 3:1 give exactly 300 and 100 of 400 requests, smoothly', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [], { upstreams: [spec(a.port, { weight: 3 }), spec(b.port)] })
  const order: string[] = []
  for (let i = 0; i < 400; i++) order.push((await fetchText(port)).headers['x-served-by'] as string)
  t.same(order.slice(0, 8), ['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a'], 'nginx smooth order: a a b a, a a b a')
  t.same([a.seen.length, b.seen.length], [300, 100], 'exactly 3:1')
})

t.test('max_conns is never exceeded; the rest wait in the queue, then 503 when it is full', async t => {
  const { up, stats } = await slowCounting(t, 'slow', 150)
  const roomy = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 2 })], queueSize: 20 })
  const all = await Promise.all(Array.from({ length: 10 }, () => fetchText(roomy.port)))
  t.same([...new Set(all.map(r => r.status))], [200], 'ten concurrent requests all answered 200')
  t.equal(stats.max, 2, 'the upstream never held more than max_conns=2 at once')

  stats.max = 0
  const tight = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 2 })], queueSize: 2 })
  const replies = await Promise.all(Array.from({ length: 10 }, () => fetchText(tight.port)))
  const ok = replies.filter(r => r.status === 200).length
  const refused = replies.filter(r => r.status === 503)
  t.equal(ok, 4, 'two in flight and two queued were served')
  t.equal(refused.length, 6, 'the other six got 503')
  t.match(refused[0]?.body, /max_conns and 2 requests are already waiting/, 'saying why')
  t.equal(stats.max, 2, 'still never more than 2 at once')
})

t.test('a queued request gets 503 when its wait times out, and a client that leaves leaves the queue', async t => {
  const { up } = await slowCounting(t, 'slow', 400)
  const { balancer, port } = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 1 })], queueTimeout: 100 })
  let firstDone = false
  const first = fetchText(port).finally(() => (firstDone = true))
  while (balancer.pool.upstreams[0]?.inFlight !== 1) await wait(5)
  const queued = await fetchText(port)
  t.equal(queued.status, 503, 'the queued request: 503')
  t.match(queued.body, /no upstream had a free slot within 0\.1s/, 'after the queue timeout')
  t.notOk(firstDone, 'before the slot freed up (the one in flight holds it 400 ms)')
  t.equal((await first).status, 200, 'the one in flight finished')

  // queueSize 1: a client that leaves while queued must give its place back.
  const one = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 1 })], queueSize: 1, queueTimeout: 5000 })
  const busy = fetchText(one.port)
  while (one.balancer.pool.upstreams[0]?.inFlight !== 1) await wait(5)
  const waiting = (): number => one.balancer.waiting
  const leaver = request({ host: '127.0.0.1', port: one.port, agent: false })
  leaver.on('error', () => {})
  leaver.end()
  while (waiting() !== 1) await wait(5)
  leaver.destroy()
  while (waiting() !== 0) await wait(5)
  t.pass('the client that left gave its place back')
  const next = await fetchText(one.port)
  t.equal(next.status, 200, 'the queue had room again: the next request waited and was served')
  t.equal((await busy).status, 200, 'as was the one in flight')
})

t.test('full primaries keep the backup out: requests wait for the primary', async t => {
  const { up, stats } = await slowCounting(t, 'primary', 100)
  const backup = await startUpstream(t, 'backup')
  const { port } = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 1 }), spec(backup.port, { backup: true })] })
  const replies = await Promise.all(Array.from({ length: 4 }, () => fetchText(port)))
  t.same(
    replies.map(r => r.body),
    ['primary', 'primary', 'primary', 'primary'],
    'all four served by the primary, one at a time',
  )
  t.equal(backup.seen.length, 0, 'the backup got none')
  t.equal(stats.max, 1, 'and the primary never held two')
})

t.test('a sticky cookie pins the client, survives 50 requests, and re-pins when its upstream dies', async t => {
  const ups = [await startUpstream(t, 'a'), await startUpstream(t, 'b'), await startUpstream(t, 'c')]
  const { port } = await startBalancer(
    t,
    ups.map(u => u.spec),
    { sticky: { cookie: 'sy', secret: 'test-secret' }, failTimeout: 60_000 },
  )
  const first = await fetchText(port)
  const setCookie = (first.headers['set-cookie'] ?? [])[0] as string
  t.match(setCookie, /^sy=[\w-]+\.[\w-]+; Path=\/; HttpOnly; SameSite=Lax$/, 'the first response pins: a signed session cookie')
  const cookie = setCookie.split(';')[0] as string
  const pinned = first.headers['x-served-by']
  const later = await Promise.all(Array.from({ length: 50 }, () => fetchText(port, { headers: { cookie } })))
  t.same([...new Set(later.map(r => r.headers['x-served-by']))], [pinned], `50 requests all went to ${pinned}`)
  t.notOk(
    later.some(r => r.headers['set-cookie']),
    'and no cookie was re-issued',
  )

  const [name, value] = cookie.split('=') as [string, string]
  const tampered = `${name}=${value.slice(0, -2)}${value.endsWith('AA') ? 'BB' : 'AA'}`
  const forged = await fetchText(port, { headers: { cookie: tampered } })
  t.ok(forged.headers['set-cookie'], 'a tampered cookie is ignored, and a fresh one issued')

  await ups['abc'.indexOf(pinned as string)]?.close()
  const moved = await fetchText(port, { headers: { cookie } })
  t.equal(moved.status, 200, 'its upstream gone, the request is still served')
  t.not(moved.headers['x-served-by'], pinned, 'by another upstream')
  const repin = ((moved.headers['set-cookie'] ?? [])[0] as string).split(';')[0] as string
  t.not(repin, cookie, 'with a new cookie naming the new upstream')
  const after = await Promise.all(Array.from({ length: 10 }, () => fetchText(port, { headers: { cookie: repin } })))
  t.same([...new Set(after.map(r => r.headers['x-served-by']))], [moved.headers['x-served-by']], 'later requests stick to the new one')
})

t.test('a sticky request whose upstream is full waits for it', async t => {
  const { up, stats } = await slowCounting(t, 'a', 150)
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [], {
    upstreams: [spec(up.port, { maxConns: 1 }), spec(b.port)],
    sticky: { cookie: 'sy', secret: 's' },
  })
  const first = await fetchText(port)
  t.equal(first.body, 'a', 'round-robin starts with a, which pins the client')
  const cookie = ((first.headers['set-cookie'] ?? [])[0] as string).split(';')[0] as string
  const replies = await Promise.all(Array.from({ length: 3 }, () => fetchText(port, { headers: { cookie } })))
  t.same(
    replies.map(r => r.body),
    ['a', 'a', 'a'],
    'all three waited for a instead of going to b',
  )
  t.equal(b.seen.length, 0, 'b got none')
  t.equal(stats.max, 1, 'a never held two')
})

t.test('least-requests sends most traffic to the fast backend', async t => {
  const { up: slow } = await slowCounting(t, 'slow', 200)
  const fast = await startUpstream(t, 'fast')
  const { port } = await startBalancer(t, [], { upstreams: [spec(slow.port), spec(fast.port)], policy: 'least-requests' })
  const counts = { slow: 0, fast: 0 }
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      for (let i = 0; i < 10; i++) counts[(await fetchText(port)).headers['x-served-by'] as 'slow' | 'fast']++
    }),
  )
  t.ok(counts.fast > 3 * counts.slow, `fast ${counts.fast}, slow ${counts.slow} of 80`)
})

t.test('a backup takes over only when every primary is down, and hands back', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const aPort = a.port
  const { port } = await startBalancer(t, [], {
    upstreams: [spec(a.port), spec(b.port), spec(c.port, { backup: true })],
    failTimeout: 300,
  })
  const serve = async (n: number) => {
    const by: string[] = []
    for (let i = 0; i < n; i++) {
      const r = await fetchText(port)
      t.equal(r.status, 200, 'every request is answered')
      by.push(r.headers['x-served-by'] as string)
    }
    return by
  }
  t.notOk((await serve(10)).includes('c'), 'both primaries up: the backup gets nothing')
  await a.close()
  t.notOk((await serve(6)).includes('c'), 'one primary left: still nothing for the backup')
  await b.close()
  t.same([...new Set(await serve(4))], ['c'], 'every primary down: the backup serves')
  await startUpstream(t, 'a2', undefined, aPort)
  await wait(350)
  t.same([...new Set(await serve(4))], ['a2'], 'a primary back after fail_timeout: it takes over again')
})
