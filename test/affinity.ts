// Session affinity and max_conns end to end: sticky cookies, the real backend's /session
// counter, and the wait queue, through a real balancer on 127.0.0.1 port 0.
import { EventEmitter, once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { createBackend } from '../packages/backend/src/index.js'
import { fetchText, startBalancer, startUpstream, type Handler, type Reply } from '../packages/balancer/test/fixtures/servers.js'

const spec = (port: number, extra: object = {}) => ({ host: '127.0.0.1', port, ...extra })
const by = (r: Reply): string => r.headers['x-served-by'] as string
const setCookies = (r: Reply): string[] => r.headers['set-cookie'] ?? []
/** `name=value` of a Set-Cookie line. */
const pairOf = (line: string): string => line.split(';')[0] as string
/** The upstream id a sticky cookie `sy=<b64url id>.<b64url mac>` names. */
const idOf = (pair: string): string => Buffer.from(pair.slice(pair.indexOf('=') + 1).split('.')[0] as string, 'base64url').toString()

/**
 * An upstream that holds each request `?ms=N` (default `ms`), or `?ms=gate` until `release()`,
 * counts how many it holds at once, and lets a test await the moment it holds `n`.
 */
async function counting(t: Test, name: string, ms: number) {
  const stats = { now: 0, max: 0 }
  const entered = new EventEmitter()
  const handler: Handler = (req, res) => {
    stats.now++
    stats.max = Math.max(stats.max, stats.now)
    entered.emit('enter')
    const param = new URL(req.url as string, 'http://x').searchParams.get('ms')
    const answer = (): void => {
      stats.now--
      res.end(name)
    }
    if (param === 'gate') void gate.then(answer)
    else setTimeout(answer, Number(param ?? ms))
  }
  let release = (): void => {}
  const gate = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, name, handler)
  const holding = async (n: number) => {
    while (stats.now < n) await once(entered, 'enter')
  }
  return { up, stats, holding, release }
}

/** `n` requests at once, each timed from when it was sent. */
function burst(port: number, n: number, path = '/') {
  return Promise.all(
    Array.from({ length: n }, async () => {
      const start = performance.now()
      const r = await fetchText(port, { path })
      return { ...r, ms: performance.now() - start }
    }),
  )
}

t.test('sticky cookie: pins, is checked, and re-pins when its upstream dies', async t => {
  const ups = [await startUpstream(t, 'a'), await startUpstream(t, 'b'), await startUpstream(t, 'c')]
  const { port } = await startBalancer(
    t,
    ups.map(u => u.spec),
    { sticky: { cookie: 'sy', secret: 'test-secret' }, failTimeout: 60_000 },
  )
  const first = await fetchText(port)
  const line = setCookies(first)[0] as string
  t.equal(setCookies(first).length, 1, 'the first response sets one cookie')
  t.match(
    line,
    /^sy=[\w-]+\.[\w-]{43}; Path=\/; HttpOnly; SameSite=Lax$/,
    `Set-Cookie: sy=<id>.<mac>; Path=/; HttpOnly; SameSite=Lax (${line})`,
  )
  t.notMatch(line, /Max-Age|Expires|Secure/i, 'a session cookie, not Secure over plain http')
  const cookie = pairOf(line)
  const pinned = ups.findIndex(u => u.spec === idOf(cookie))
  t.equal(by(first), 'abc'[pinned], `it names the upstream that served it (${idOf(cookie)})`)

  const held: Reply[] = []
  for (let i = 0; i < 50; i++) held.push(await fetchText(port, { headers: { cookie } }))
  t.same([...new Set(held.map(by))], [by(first)], `50 requests with the cookie all went to ${by(first)}`)
  t.equal(held.filter(r => setCookies(r).length > 0).length, 0, 'and none got another Set-Cookie')

  const [name, value] = cookie.split('=') as [string, string]
  const dot = value.indexOf('.')
  const tampered = `${name}=${value.slice(0, dot + 1)}${value[dot + 1] === 'A' ? 'B' : 'A'}${value.slice(dot + 2)}`
  const forged = await fetchText(port, { headers: { cookie: tampered } })
  const next = 'abc'[(pinned + 1) % 3] as string
  t.equal(forged.status, 200, 'a cookie with a flipped MAC char: 200')
  t.equal(by(forged), next, `ignored: round-robin's next pick, ${next}, served it`)
  t.equal(idOf(pairOf(setCookies(forged)[0] ?? '')), ups['abc'.indexOf(next)]?.spec, 'and a fresh cookie naming it was issued')

  await ups[pinned]?.close()
  const moved = await fetchText(port, { headers: { cookie } })
  t.equal(moved.status, 200, 'the pinned upstream closed: still 200')
  t.not(by(moved), by(first), `served elsewhere (${by(moved)})`)
  const repin = pairOf(setCookies(moved)[0] ?? '')
  t.not(repin, cookie, 'with a new cookie')
  t.equal(idOf(repin), ups['abc'.indexOf(by(moved))]?.spec, 'naming the new upstream')
  const after: Reply[] = []
  for (let i = 0; i < 10; i++) after.push(await fetchText(port, { headers: { cookie: repin } }))
  t.same([...new Set(after.map(by))], [by(moved)], 'later requests stick to the new one')
  t.equal(after.filter(r => setCookies(r).length > 0).length, 0, 'without a further Set-Cookie')
})

/** The real backend, on port 0; resolves with its port. */
async function backend(t: Test, id: string): Promise<number> {
  const server = createBackend({ id, cacheTtl: 0 })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    server.close()
    await once(server, 'close')
  })
  return (server.address() as AddressInfo).port
}

/** `n` GET /session with a cookie jar that keeps every cookie it is sent. */
async function visits(port: number, n: number) {
  const jar = new Map<string, string>()
  const out: { id: string; visits: number; setCookies: string[] }[] = []
  for (let i = 0; i < n; i++) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ')
    const r = await fetchText(port, { path: '/session', headers: cookie === '' ? {} : { cookie } })
    const body = JSON.parse(r.body) as { id: string; visits: number }
    for (const pair of setCookies(r).map(pairOf)) jar.set(pair.slice(0, pair.indexOf('=')), pair.slice(pair.indexOf('=') + 1))
    out.push({ id: body.id, visits: body.visits, setCookies: setCookies(r).map(l => l.slice(0, l.indexOf('='))) })
  }
  return out
}

t.test("the real backend's /session counter: climbs with a sticky cookie, restarts without one", async t => {
  const ports = [await backend(t, 'backend-a'), await backend(t, 'backend-b'), await backend(t, 'backend-c')]
  const sticky = await startBalancer(t, [], { upstreams: ports.map(p => spec(p)), sticky: { cookie: 'sy', secret: 'test-secret' } })
  const pinned = await visits(sticky.port, 5)
  t.same(
    pinned.map(v => v.visits),
    [1, 2, 3, 4, 5],
    'sticky: the visit counter climbs 1..5',
  )
  t.same([...new Set(pinned.map(v => v.id))], ['backend-a'], 'all on one backend')
  t.same(pinned[0]?.setCookies.sort(), ['sid', 'sy'], "the first response carries the backend's sid and the balancer's sy")
  t.same(
    pinned.slice(1).map(v => v.setCookies.length),
    [0, 0, 0, 0],
    'later ones set no cookie',
  )

  const plain = await startBalancer(t, [], { upstreams: ports.map(p => spec(p)) })
  const rr = await visits(plain.port, 6)
  t.same(
    rr.map(v => v.visits),
    [1, 1, 1, 1, 1, 1],
    'round-robin: every backend sees a session it does not know, and starts over',
  )
  t.same(
    rr.map(v => v.id),
    ['backend-a', 'backend-b', 'backend-c', 'backend-a', 'backend-b', 'backend-c'],
    'as the backends rotate',
  )
})

t.test('max_conns: never exceeded, the rest queue; a full queue and a queue timeout answer 503', async t => {
  const { up, stats, holding: holdingSlow, release } = await counting(t, 'slow', 200)
  const roomy = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 2 })], queueSize: 20 })
  const all = await burst(roomy.port, 10)
  t.same([...new Set(all.map(r => r.status))], [200], 'queueSize 20: 10 concurrent requests all 200')
  t.equal(stats.max, 2, 'the upstream never held more than max_conns=2 at once')
  const slowest = Math.max(...all.map(r => r.ms))
  t.ok(slowest >= 5 * 200 - 50, `served two at a time: the last one took ${slowest.toFixed(0)} ms (5 rounds of 200 ms)`)

  stats.max = 0
  const tight = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 2 })], queueSize: 2 })
  // The upstream holds every request until six are answered: two held there, two queued, six
  // refused, however long the ten take to arrive (with 200 ms holds, a busy machine let slots free
  // up before the last came in). A balancer that queued more would never answer six, and the test
  // would time out.
  const replies: Reply[] = []
  let sixAnswered = (): void => {}
  const six = new Promise<void>(resolve => (sixAnswered = resolve))
  const sent = Array.from({ length: 10 }, () =>
    fetchText(tight.port, { path: '/?ms=gate' }).then(r => {
      if (replies.push(r) === 6) sixAnswered()
    }),
  )
  await holdingSlow(2)
  await six
  release()
  await Promise.all(sent)
  const refused = replies.filter(r => r.status === 503)
  t.equal(replies.filter(r => r.status === 200).length, 4, 'queueSize 2: 2 in flight + 2 queued are served')
  t.equal(refused.length, 6, 'the other 6 get 503')
  t.ok(
    refused.every(r => /max_conns/.test(r.body) && r.headers['content-type']?.startsWith('text/plain')),
    `with a text body naming max_conns: ${refused[0]?.body.trim()}`,
  )
  t.equal(stats.max, 2, 'still never more than 2 at once')

  const { up: slower, holding } = await counting(t, 'slower', 500)
  const timed = await startBalancer(t, [], { upstreams: [spec(slower.port, { maxConns: 2 })], queueTimeout: 100 })
  let busyDone = false
  const busy = burst(timed.port, 2).finally(() => (busyDone = true))
  await holding(2)
  const queued = await burst(timed.port, 3)
  t.same(
    queued.map(r => r.status),
    [503, 503, 503],
    'queueTimeout 100 ms: the 3 queued get 503',
  )
  t.ok(
    queued.every(r => /no upstream had a free slot within 0\.1s/.test(r.body)),
    `saying why: ${queued[0]?.body.trim()}`,
  )
  const waited = queued.map(r => r.ms.toFixed(0)).join(', ')
  t.ok(
    queued.every(r => r.ms >= 95),
    `not before the 100 ms queue timeout: ${waited} ms`,
  )
  t.notOk(busyDone, 'and before the slots freed up (held 500 ms): they did not wait for one')
  t.same(
    (await busy).map(r => r.status),
    [200, 200],
    'the 2 in flight finish with 200',
  )
})

t.test('full primaries do not spill onto a backup: requests wait for the primary', async t => {
  const { up, stats } = await counting(t, 'primary', 100)
  const backup = await startUpstream(t, 'backup')
  const { port } = await startBalancer(t, [], { upstreams: [spec(up.port, { maxConns: 1 }), spec(backup.port, { backup: true })] })
  const replies = await burst(port, 4)
  t.same(
    replies.map(r => `${r.status} ${by(r)}`),
    Array(4).fill('200 primary'),
    'all 4 served by the primary, 200',
  )
  t.equal(backup.seen.length, 0, 'the backup got 0')
  t.equal(stats.max, 1, 'the primary never held more than 1')
})

t.test('a queued sticky request does not hold up one that could use a freed upstream', async t => {
  const a = await counting(t, 'a', 0)
  const b = await counting(t, 'b', 0)
  const { server, port } = await startBalancer(t, [], {
    upstreams: [spec(a.up.port, { maxConns: 1 }), spec(b.up.port, { maxConns: 1 })],
    sticky: { cookie: 'sy', secret: 'test-secret' },
    queueTimeout: 5000,
  })
  const first = await fetchText(port)
  t.equal(by(first), 'a', 'round-robin starts with a, and the cookie pins the client there')
  const cookie = pairOf(setCookies(first)[0] ?? '')
  let aDone = false
  const longA = fetchText(port, { path: '/?ms=1000', headers: { cookie } }).finally(() => (aDone = true))
  await a.holding(1)
  const shortB = fetchText(port, { path: '/?ms=300' })
  await b.holding(1)
  // Both full. A sticky request queues for a (first in line), then a plain one for anyone.
  const stickyWaiter = fetchText(port, { headers: { cookie } })
  await once(server, 'request')
  const plain = await fetchText(port)
  t.equal(plain.status, 200, 'the plain request is served')
  t.equal(by(plain), 'b', 'by b, as soon as b freed up at 300 ms')
  t.notOk(aDone, 'not when a did at 1000 ms: a still holds its request')
  t.same([(await longA).status, (await shortB).status, (await stickyWaiter).status], [200, 200, 200], 'the others are served too')
  t.equal(by(await stickyWaiter), 'a', 'the sticky one waited for a')
})

t.test('queueTimeout counts from when a request first queued, even if it was woken in between', async t => {
  const a = await counting(t, 'a', 0)
  const b = await counting(t, 'b', 0)
  const { balancer, server, port } = await startBalancer(t, [], {
    upstreams: [spec(a.up.port, { maxConns: 1 }), spec(b.up.port, { maxConns: 1 })],
    sticky: { cookie: 'sy', secret: 'test-secret' },
    queueTimeout: 700,
  })
  const cookie = pairOf(setCookies(await fetchText(port))[0] ?? '')
  const longA = fetchText(port, { path: '/?ms=3000', headers: { cookie } })
  await a.holding(1)
  // b frees its slot at 600 ms and wakes the sticky request, which declines it: a clock
  // restarted then would run out at about 1300 ms after it queued, the right one at 700.
  const shortB = fetchText(port, { path: '/?ms=600' })
  await b.holding(1)
  const start = performance.now()
  const waiting = fetchText(port, { headers: { cookie } })
  await once(server, 'request')
  // Queued by now (the balancer's own listener ran first). Timers fire in the order they are
  // due however late the loop runs: at 950 ms the right clock has run out, a restarted one not.
  const atMarker = new Promise<number>(resolve => setTimeout(() => resolve(balancer.waiting), 950))
  const r = await waiting
  const ms = performance.now() - start
  t.equal(r.status, 503, 'a stays full past the queue timeout: the sticky request gets 503')
  t.ok(ms >= 650, `not before the 700 ms queue timeout (${ms.toFixed(0)} ms)`)
  t.equal(await atMarker, 0, 'and it left the queue before 950 ms: b waking it at 600 ms did not restart its clock')
  t.same([(await longA).status, (await shortB).status], [200, 200], 'the two in flight finish with 200')
})
