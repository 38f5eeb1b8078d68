// The edge cache inside the real balancer: the step before choosing an upstream, with real upstreams on port 0 counting what they saw.
import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import t from 'tap'
import { Socket } from 'node:net'
import { AdminAuth } from '../../src/admin/auth.js'
import { createAdmin } from '../../src/admin/server.js'
import { formatCombined, type AccessEntry } from '../../src/observe/access-log.js'
import { startBalancer, startUpstream } from '../fixtures/servers.js'
import { askUntil, fetch, until, type Reply } from './fixtures/front.js'
import { serve } from '../fixtures/servers.js'

const MB = 1024 * 1024
const cache = (over = {}) => ({ cache: { maxBytes: 64 * MB, ...over } })

function answering(headers: Record<string, string | string[]>, status = 200) {
  let n = 0
  return (_req: unknown, res: ServerResponse) => {
    n++
    res.writeHead(status, headers)
    res.end(`body ${n}\n`)
  }
}

t.test('a HIT never reaches an upstream; the access log says edge_cache; the totals count it; unrouted does not', async t => {
  const a = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60' }))
  const b = await startUpstream(t, 'b', answering({ 'cache-control': 'max-age=60' }))
  const sy = await startBalancer(t, [a.spec, b.spec], cache())
  const first = await fetch(sy.port, '/p')
  const hits = await Promise.all([fetch(sy.port, '/p'), fetch(sy.port, '/p'), fetch(sy.port, '/p')])
  t.equal(first.cache, 'MISS', 'MISS first')
  t.ok(
    hits.every(h => h.cache === 'HIT' && h.body.equals(first.body)),
    'then HITs with the stored body',
  )
  t.equal(a.seen.length + b.seen.length, 1, 'the upstreams saw one request')
  await until(() => sy.entries.length === 4, 'four access entries')
  t.same(
    sy.entries.map(e => [e.edgeCache, e.upstream, e.status]),
    [
      ['MISS', first.headers['x-served-by'] === 'a' ? a.spec : b.spec, 200],
      ['HIT', undefined, 200],
      ['HIT', undefined, 200],
      ['HIT', undefined, 200],
    ],
    'the access log: MISS through an upstream, then HITs with none',
  )
  t.equal(sy.balancer.totals.data().byMethod.GET?.[1], 4, 'all four counted')
  t.same(sy.balancer.unrouted.data().byMethod, {}, 'none as unrouted')
  t.equal(sy.balancer.cacheCounts()?.requests.HIT, 3, 'the cache counts its HITs')
  t.equal(sy.balancer.purgeCache({ all: true }), 1, 'purge through the balancer')
})

t.test('the lock in the balancer: 200 concurrent cold requests, one upstream request', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, 'a', (_req, res) => {
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('one\n')
    })
  })
  const sy = await startBalancer(t, [up.spec], cache({ lockTimeout: 3_600_000 }))
  let received = 0
  sy.server.on('request', () => received++)
  const replies = Array.from({ length: 200 }, () => fetch(sy.port, '/cold'))
  await until(() => received === 200, 'all 200 to reach the balancer')
  release()
  const all = await Promise.all(replies)
  t.equal(up.seen.length, 1, 'exactly one upstream request')
  t.ok(
    all.every(r => r.status === 200 && r.body.toString() === 'one\n'),
    'every one answered',
  )
  t.equal(all.filter(r => r.cache === 'HIT').length, 199, '199 from the store')
})

t.test('stale-while-revalidate in the balancer: one background request on a detached GET, then the new body', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=1, stale-while-revalidate=60' }))
  const sy = await startBalancer(t, [up.spec], cache())
  await fetch(sy.port, '/swr')
  const stale = (await askUntil(sy.port, '/swr', r => r.cache !== 'HIT', 'expiry')).at(-1) as Reply
  t.ok(stale.cache === 'STALE' || stale.cache === 'UPDATING', `answered at once: ${stale.cache}`)
  t.equal(stale.body.toString(), 'body 1\n', 'with the stored body')
  const fresh = (await askUntil(sy.port, '/swr', r => r.body.toString() === 'body 2\n', 'the refreshed body')).at(-1) as Reply
  t.equal(fresh.cache, 'HIT', 'the refreshed response is a HIT')
  t.equal(up.seen.length, 2, 'exactly one background request reached the upstream')
  t.equal(up.seen[1]?.method, 'GET', 'a GET')
  await fetch(sy.port, '/swr-head')
  await askUntil(sy.port, '/swr-head', r => r.cache !== 'HIT', 'expiry of /swr-head')
  t.ok(up.seen.at(-1)?.method === 'GET', 'a refresh a HEAD started is a GET too')
})

t.test('revalidation in the balancer: a 304 is taken by the cache, the client gets the whole response', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    const match = req.headers['if-none-match'] === '"v1"'
    res.writeHead(match ? 304 : 200, { 'cache-control': 'max-age=1', etag: '"v1"' })
    res.end(match ? undefined : 'whole\n')
  })
  const sy = await startBalancer(t, [up.spec], cache())
  await fetch(sy.port, '/e', { headers: { 'if-none-match': '"client-etag"' } })
  t.equal(up.seen[0]?.headers['if-none-match'], undefined, "the client's conditional is not sent upstream on a miss")
  const r = (await askUntil(sy.port, '/e', x => x.cache !== 'HIT', 'expiry')).at(-1) as Reply
  t.same([r.status, r.cache, r.body.toString()], [200, 'REVALIDATED', 'whole\n'], 'REVALIDATED, whole')
  t.equal(up.seen[1]?.headers['if-none-match'], '"v1"', 'the upstream saw If-None-Match')
  await until(() => sy.entries.some(e => e.edgeCache === 'REVALIDATED'), 'the access entry')
  const logged = sy.entries.find(e => e.edgeCache === 'REVALIDATED')
  t.equal(logged?.bytes, 6, 'logged with the bytes the client got')
})

t.test('stale on error in the balancer: every upstream down or failing, a stored URL is STALE; an uncached one 502/503', async t => {
  let status = 200
  const a = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(status, { 'cache-control': req.url === '/strict' ? 'max-age=1, must-revalidate' : 'max-age=1, stale-if-error=1' })
    res.end(`page ${req.url}\n`)
  })
  const sy = await startBalancer(t, [a.spec], cache({ staleIfError: 3_600_000 }))
  for (const p of ['/p', '/strict', '/short']) await fetch(sy.port, p)
  status = 503
  const five = (await askUntil(sy.port, '/p', r => r.cache !== 'HIT', 'expiry')).at(-1) as Reply
  t.same([five.status, five.cache, five.body.toString()], [200, 'STALE', 'page /p\n'], 'a 503 from the upstream: the stale page')
  await a.close()
  const down = await fetch(sy.port, '/p')
  t.same([down.status, down.cache], [200, 'STALE'], 'the upstream gone (connect error): STALE')
  const marked = await fetch(sy.port, '/p')
  t.same([marked.status, marked.cache], [200, 'STALE'], 'every upstream marked down (503 without a try): STALE')
  const never = await fetch(sy.port, '/never')
  t.ok(never.status === 502 || never.status === 503, `an uncached URL: ${never.status}`)
  t.equal(never.cache, 'MISS', "with X-Cache-Status on the balancer's own answer")
  const strict = await fetch(sy.port, '/strict')
  t.ok(strict.status === 502 || strict.status === 503, `must-revalidate: never stale (${strict.status})`)
  const past = await askUntil(sy.port, '/short', r => r.status !== 200, 'past stale-if-error=1')
  t.ok(past.at(-1)?.status === 502 || past.at(-1)?.status === 503, 'past the window: 502/503')
})

t.test('writes, Range, Authorization and a 20 MB stream through the balancer', async t => {
  const big = Buffer.alloc(20 * MB, 7)
  const up = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/big') {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end(big)
      return
    }
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.end(req.method === 'GET' ? `0123456789 for ${req.headers.authorization ?? 'all'}` : 'ok')
  })
  const sy = await startBalancer(t, [up.spec], cache({ maxObject: 8 * MB }))
  await fetch(sy.port, '/doc')
  const part = await fetch(sy.port, '/doc', { headers: { range: 'bytes=2-5' } })
  t.same([part.status, part.body.toString(), part.cache], [206, '2345', 'HIT'], 'a range on a hit: 206, the right bytes')
  const auth = await fetch(sy.port, '/doc', { headers: { authorization: 'Bearer x' } })
  t.same([auth.cache, auth.body.toString()], ['BYPASS', '0123456789 for Bearer x'], "Authorization is not answered from another's response")
  t.equal((await fetch(sy.port, '/doc', { method: 'POST', body: 'x' })).cache, 'BYPASS', 'a POST passes')
  t.equal((await fetch(sy.port, '/doc')).cache, 'MISS', 'and invalidated the stored GET')
  const r = await fetch(sy.port, '/big')
  t.equal(createHash('sha256').update(r.body).digest('hex'), createHash('sha256').update(big).digest('hex'), '20 MB intact (sha256)')
  t.equal((await fetch(sy.port, '/big')).cache, 'MISS', 'and not stored')
})

t.test('DELETE /cache on the admin listener: the admin token, a URL, a prefix, everything; 404 with the cache off', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60' }))
  const sy = await startBalancer(t, [up.spec], cache())
  const token = 'purge-token-0123456789'
  const adminPort = await serve(t, createAdmin(sy.balancer, { auth: new AdminAuth(token) }))
  for (const p of ['/a?x=1', '/img/1', '/img/2', '/b']) await fetch(sy.port, p)
  const authorization = `Bearer ${token}`
  const del = (q: string) => fetch(adminPort, `/cache${q}`, { method: 'DELETE', headers: { authorization } })
  // A purge changes state: the admin API's one gate (admin/auth.ts) guards it.
  t.equal((await fetch(adminPort, '/cache', { method: 'DELETE' })).status, 401, 'no token: 401')
  t.equal(
    (await fetch(adminPort, '/cache', { method: 'DELETE', headers: { authorization: 'Bearer wrong-token-0123456789' } })).status,
    401,
    'a wrong token: 401',
  )
  const ungated = await serve(t, createAdmin(sy.balancer))
  t.equal((await fetch(ungated, '/cache', { method: 'DELETE' })).status, 403, 'no token configured: 403')
  t.equal(sy.balancer.cacheCounts()?.entries, 4, 'and nothing was purged by them')
  const one = await del('?url=%2Fa%3Fx%3D1')
  t.same([one.status, JSON.parse(one.body.toString())], [200, { purged: 1 }], 'one URL')
  t.same(JSON.parse((await del('?prefix=/img/')).body.toString()), { purged: 2 }, 'a prefix')
  t.same(JSON.parse((await del('')).body.toString()), { purged: 1 }, 'everything')
  t.equal((await del('?nope=1')).status, 400, 'a bad query: 400')
  t.equal((await fetch(adminPort, '/cache')).status, 405, 'GET /cache: 405')
  t.equal((await fetch(sy.port, '/b')).cache, 'MISS', 'purged')
  const plain = await startBalancer(t, [up.spec])
  const offPort = await serve(t, createAdmin(plain.balancer, { auth: new AdminAuth(token) }))
  t.equal((await fetch(offPort, '/cache', { method: 'DELETE', headers: { authorization } })).status, 404, 'cache off: 404')
  t.equal(sy.balancer.cacheCounts()?.entries, 1, 'only what was asked since')
})

t.test('a client that leaves while it waits on the lock is logged 499; the combined line says edge_cache=', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, 'a', (_req, res) => {
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('late\n')
    })
  })
  const sy = await startBalancer(t, [up.spec], cache({ lockTimeout: 3_600_000 }))
  let received = 0
  sy.server.on('request', () => received++)
  const first = fetch(sy.port, '/wait')
  await until(() => received === 1, 'the first request')
  const leaver = new Socket()
  leaver.connect(sy.port, '127.0.0.1', () => leaver.write(`GET /wait HTTP/1.1\r\nHost: 127.0.0.1:${sy.port}\r\n\r\n`))
  await until(() => received === 2, 'the second to wait')
  leaver.destroy()
  await until(() => sy.entries.some(e => e.status === 499), 'the 499 entry')
  t.same(
    sy.entries.filter(e => e.status === 499).map(e => [e.edgeCache, e.upstream]),
    [['MISS', undefined]],
    'logged as 499, MISS, no upstream',
  )
  release()
  t.equal((await first).body.toString(), 'late\n', 'the first gets its answer')
  t.equal(sy.balancer.cache?.store.entries, 1, 'and it was stored')
  const line = formatCombined({ ...(sy.entries[0] as AccessEntry), edgeCache: 'HIT' })
  t.match(line, / cache=- edge_cache=HIT$/, 'the combined line ends with edge_cache=')
  t.notMatch(formatCombined({ ...(sy.entries[0] as AccessEntry), edgeCache: undefined }), /edge_cache/, 'and has none without the cache')
})
