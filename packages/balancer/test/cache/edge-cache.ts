import { createHash } from 'node:crypto'
import type { ServerResponse } from 'node:http'
import t from 'tap'
import { startUpstream } from '../fixtures/servers.js'
import { askUntil, fetch, startFront, until, type Reply } from './fixtures/front.js'
import { Socket } from 'node:net'

/** An upstream that answers every path with `headers` and a body naming the request's number. */
function answering(headers: Record<string, string | string[]>, status = 200) {
  let n = 0
  return (_req: unknown, res: ServerResponse) => {
    n++
    res.writeHead(status, headers)
    res.end(`body ${n}\n`)
  }
}

t.test('a stored 200 is a HIT that never reaches the upstream, and its Age grows', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60', 'content-type': 'text/plain' }))
  const front = await startFront(t, up.port)
  const first = await fetch(front.port, '/page?x=1')
  t.equal(first.cache, 'MISS', 'the first request is a MISS')
  const second = await fetch(front.port, '/page?x=1')
  t.equal(second.cache, 'HIT', 'the second is a HIT')
  t.equal(second.body.toString(), 'body 1\n', 'with the stored body')
  t.equal(second.headers['content-length'], '7', 'and its length')
  t.equal(second.headers['content-type'], 'text/plain', 'and the stored headers')
  t.equal(second.headers.age, '0', 'Age starts at 0')
  t.equal(up.seen.length, 1, 'the upstream saw one request')
  t.equal((await fetch(front.port, '/page?x=2')).cache, 'MISS', 'another query is another key')
  t.equal((await fetch(front.port, '/page?x=1', { headers: { host: 'other.example' } })).cache, 'MISS', 'another Host is another key')
  const replies = await askUntil(front.port, '/page?x=1', r => r.headers.age !== '0', 'Age to grow')
  const last = replies.at(-1) as Reply
  t.ok(
    replies.every(r => r.cache === 'HIT'),
    'every answer meanwhile was a HIT',
  )
  t.ok(Number(last.headers.age) >= 1, `Age grew to ${last.headers.age}`)
  t.equal(up.seen.length, 3, 'no HIT reached the upstream')
  t.equal(front.cache.counts().requests.HIT, replies.length + 1, 'every HIT is counted')
  t.equal(front.answered.length, replies.length + 1, 'and reported to the balancer as answered by the cache')
})

/** Responses never stored, each with why: every request is a MISS (or BYPASS) and reaches the upstream. */
const NEVER: [string, number, Record<string, string | string[]>, number?][] = [
  ['Set-Cookie, even with public', 200, { 'cache-control': 'public, max-age=60', 'set-cookie': 'session=1' }],
  ['Cache-Control: no-store', 200, { 'cache-control': 'max-age=60, no-store' }],
  ['Cache-Control: private', 200, { 'cache-control': 'private, max-age=60' }],
  ['Cache-Control: no-cache', 200, { 'cache-control': 'no-cache, max-age=60' }],
  ['Pragma: no-cache without Cache-Control', 200, { pragma: 'no-cache', expires: new Date(Date.now() + 60_000).toUTCString() }],
  ['Vary: *', 200, { 'cache-control': 'max-age=60', vary: '*' }],
  ['a 302', 302, { 'cache-control': 'max-age=60', location: '/elsewhere' }],
  ['a 500', 500, { 'cache-control': 'max-age=60' }],
  ['a 206', 206, { 'cache-control': 'max-age=60', 'content-range': 'bytes 0-6/100' }],
  [
    'no freshness and --cache-default-ttl 0 (no heuristic from Last-Modified)',
    200,
    { 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' },
    0,
  ],
  ['max-age=0', 200, { 'cache-control': 'max-age=0' }],
  ['a 404 with no freshness (the default TTL is for 200 and 301)', 404, {}],
]

t.test('what is never stored is a MISS every time, and the upstream sees every request', async t => {
  for (const [what, status, headers, defaultTtl = 60_000] of NEVER) {
    const up = await startUpstream(t, 'a', answering(headers, status))
    const front = await startFront(t, up.port, { defaultTtl })
    const statuses = [] as (string | undefined)[]
    for (let i = 0; i < 3; i++) statuses.push((await fetch(front.port, '/never')).cache)
    t.same(statuses, ['MISS', 'MISS', 'MISS'], `${what}: MISS every time`)
    t.equal(up.seen.length, 3, `${what}: the upstream saw every request`)
    t.equal(front.cache.store.entries, 0, `${what}: nothing stored`)
  }
})

t.test('--cache-default-ttl gives a 200 without freshness a lifetime, as proxy_cache_valid does', async t => {
  const up = await startUpstream(t, 'a', answering({}))
  const front = await startFront(t, up.port, { defaultTtl: 60_000 })
  t.equal((await fetch(front.port, '/')).cache, 'MISS', 'first a MISS')
  t.equal((await fetch(front.port, '/')).cache, 'HIT', 'then a HIT')
  t.equal(up.seen.length, 1, 'the upstream saw one request')
})

t.test('Authorization: never answered from a stored response; stored only when the response says public', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': req.url === '/shared' ? 'public, max-age=60' : 'max-age=60' })
    res.end(`for ${req.headers.authorization ?? 'anyone'}\n`)
  })
  const front = await startFront(t, up.port)
  t.equal((await fetch(front.port, '/mine')).cache, 'MISS', 'an anonymous request stores /mine')
  const alice = await fetch(front.port, '/mine', { headers: { authorization: 'Basic YWxpY2U6eA==' } })
  t.equal(alice.cache, 'BYPASS', 'a request with Authorization bypasses the stored response')
  t.equal(alice.body.toString(), 'for Basic YWxpY2U6eA==\n', 'and gets its own answer')
  t.equal(
    (await fetch(front.port, '/mine', { headers: { authorization: 'Basic Ym9iOng=' } })).body.toString(),
    'for Basic Ym9iOng=\n',
    'so does the next user',
  )
  const anon = await fetch(front.port, '/mine')
  t.equal(anon.body.toString(), 'for anyone\n', "no user's answer was stored over the anonymous one")
  t.equal(anon.cache, 'HIT', 'which is still a HIT')
  await fetch(front.port, '/private-answer', { headers: { authorization: 'Basic YWxpY2U6eA==' } })
  t.equal((await fetch(front.port, '/private-answer')).cache, 'MISS', 'an answer to Authorization without public was not stored')
  await fetch(front.port, '/shared', { headers: { authorization: 'Basic YWxpY2U6eA==' } })
  t.equal((await fetch(front.port, '/shared')).cache, 'HIT', 'one that says public was (RFC 9111 §3.5)')
})

t.test('the lock: 200 concurrent requests for one cold key send one request upstream', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, 'a', (_req, res) => {
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('the one answer\n')
    })
  })
  const front = await startFront(t, up.port, { lockTimeout: 3_600_000 })
  const replies = Array.from({ length: 200 }, () => fetch(front.port, '/cold'))
  await until(() => front.received === 200, 'all 200 requests to reach the cache')
  release()
  const all = await Promise.all(replies)
  t.equal(up.seen.length, 1, 'exactly one upstream request')
  t.ok(
    all.every(r => r.status === 200 && r.body.toString() === 'the one answer\n'),
    'all 200 got its answer',
  )
  t.same(all.filter(r => r.cache === 'MISS').length, 1, 'one MISS')
  t.same(all.filter(r => r.cache === 'HIT').length, 199, 'and 199 HITs, served from what it stored')
})

t.test('the lock: when the fetch is uncacheable, every waiter goes upstream at once, and later ones do not queue', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  let n = 0
  const up = await startUpstream(t, 'a', (_req, res) => {
    const mine = ++n
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60', 'set-cookie': `id=${mine}` })
      res.end(`answer ${mine}\n`)
    })
  })
  // A lock timeout no test run reaches: a waiter that waited for it would hang the test.
  const front = await startFront(t, up.port, { lockTimeout: 3_600_000 })
  const replies = Array.from({ length: 200 }, () => fetch(front.port, '/cookie'))
  await until(() => front.received === 200, 'all 200 requests to reach the cache')
  release()
  const all = await Promise.all(replies)
  t.equal(up.seen.length, 200, 'each request went upstream once')
  t.equal(new Set(all.map(r => r.body.toString())).size, 200, 'and got its own answer')
  t.ok(
    all.every(r => r.cache === 'MISS' && r.headers['set-cookie'] !== undefined),
    'every one a MISS with its own cookie',
  )
  // Hit-for-miss: two more requests both reach the upstream while neither is answered.
  let second = (): void => {}
  const both = new Promise<void>(resolve => (second = resolve))
  n = 0
  const up2 = await startUpstream(t, 'b', (_req, res) => {
    if (++n === 2) second()
    void both.then(() => {
      res.writeHead(200, { 'set-cookie': 'x=1', 'cache-control': 'max-age=60' })
      res.end('x\n')
    })
  })
  front.upstreamPort = up2.port
  const [a, b] = await Promise.all([fetch(front.port, '/cookie'), fetch(front.port, '/cookie')])
  t.same([a.cache, b.cache], ['MISS', 'MISS'], 'both MISS')
  t.equal(up2.seen.length, 2, 'both were at the upstream at once: the known-uncacheable key took no lock')
})

t.test('the lock times out: a waiter goes upstream itself, and its answer is not stored', async t => {
  let second = (): void => {}
  const secondCame = new Promise<void>(resolve => (second = resolve))
  let n = 0
  const up = await startUpstream(t, 'a', (_req, res) => {
    const mine = ++n
    if (mine === 2) second()
    // The first answer waits for the second request to reach the upstream: proof that it did not wait for the first.
    void (mine === 1 ? secondCame : Promise.resolve()).then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end(`answer ${mine}\n`)
    })
  })
  const front = await startFront(t, up.port, { lockTimeout: 50 })
  const [first, waited] = await Promise.all([
    fetch(front.port, '/slow'),
    until(() => front.received === 1, 'the first').then(() => fetch(front.port, '/slow')),
  ])
  t.equal(waited.body.toString(), 'answer 2\n', 'the waiter went upstream on its own')
  t.equal(waited.cache, 'MISS', 'as a MISS')
  t.equal(first.body.toString(), 'answer 1\n', 'the first got its own answer')
  const third = await fetch(front.port, '/slow')
  t.same([third.cache, third.body.toString()], ['HIT', 'answer 1\n'], "the first's answer is the one stored")
})

t.test('stale-while-revalidate: answered at once, one background request, then a HIT with the new body', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=1, stale-while-revalidate=60' }))
  const front = await startFront(t, up.port)
  t.equal((await fetch(front.port, '/swr')).body.toString(), 'body 1\n', 'stored')
  const replies = await askUntil(front.port, '/swr', r => r.cache !== 'HIT', 'the entry to go stale')
  const stale = replies.at(-1) as Reply
  t.ok(stale.cache === 'STALE' || stale.cache === 'UPDATING', `past freshness it is ${stale.cache}`)
  t.equal(stale.body.toString(), 'body 1\n', 'with the stored body, at once')
  await until(() => front.refreshes.done === 1, 'the background refresh to finish')
  t.equal(front.refreshes.sent, 1, 'exactly one background request')
  t.equal(up.seen.length, 2, 'the upstream saw it, and nothing else')
  const next = await fetch(front.port, '/swr')
  t.same([next.cache, next.body.toString()], ['HIT', 'body 2\n'], 'the next request is a HIT with the new body')
})

t.test('revalidation: an ETag answered 304 makes the stored response fresh again, REVALIDATED', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    const headers = {
      'cache-control': 'max-age=1',
      etag: '"v1"',
      'x-version': req.headers['if-none-match'] === undefined ? 'first' : 'refreshed',
      link: ['</a>', '</b>'],
    }
    if (req.headers['if-none-match'] === '"v1"') {
      res.writeHead(304, headers)
      res.end()
      return
    }
    res.writeHead(200, headers)
    res.end('the body\n')
  })
  const front = await startFront(t, up.port)
  await fetch(front.port, '/etag')
  const replies = await askUntil(front.port, '/etag', r => r.cache !== 'HIT', 'the entry to expire')
  const revalidated = replies.at(-1) as Reply
  t.equal(revalidated.cache, 'REVALIDATED', 'REVALIDATED')
  t.equal(revalidated.status, 200, 'the client gets the full response')
  t.equal(revalidated.body.toString(), 'the body\n', 'with the stored body')
  t.equal(revalidated.headers['x-version'], 'refreshed', "and the 304's headers")
  t.equal(revalidated.headers.link, '</a>, </b>', 'repeated ones included')
  t.equal(up.seen[1]?.headers['if-none-match'], '"v1"', 'the upstream saw If-None-Match')
  const next = await fetch(front.port, '/etag')
  t.same([next.cache, next.headers['x-version']], ['HIT', 'refreshed'], 'fresh again: a HIT with the refreshed headers')
  const lm = await startUpstream(t, 'b', (req, res) => {
    const headers = { 'cache-control': 'max-age=1', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' }
    res.writeHead(req.headers['if-modified-since'] === headers['last-modified'] ? 304 : 200, headers)
    res.end(req.headers['if-modified-since'] === undefined ? 'dated\n' : undefined)
  })
  front.upstreamPort = lm.port
  await fetch(front.port, '/dated')
  const dated = (await askUntil(front.port, '/dated', r => r.cache !== 'HIT', 'the dated entry to expire')).at(-1) as Reply
  t.same([dated.cache, dated.body.toString()], ['REVALIDATED', 'dated\n'], 'Last-Modified revalidates with If-Modified-Since')
})

t.test('stale on error: every upstream gone, a stored URL is STALE within stale-if-error, and 502 past it', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, {
      'cache-control':
        req.url === '/short' ? 'max-age=1, stale-if-error=1' : req.url === '/strict' ? 'max-age=1, must-revalidate' : 'max-age=1',
    })
    res.end(`page ${req.url}\n`)
  })
  const front = await startFront(t, up.port)
  for (const path of ['/kept', '/short', '/strict']) await fetch(front.port, path)
  await up.close()
  const kept = (await askUntil(front.port, '/kept', r => r.cache !== 'HIT', '/kept to expire')).at(-1) as Reply
  t.same(
    [kept.status, kept.cache, kept.body.toString()],
    [200, 'STALE', 'page /kept\n'],
    'the stored page is served STALE (--cache-stale-if-error 1h)',
  )
  const uncached = await fetch(front.port, '/never-seen')
  t.equal(uncached.status, 502, 'a URL never stored gets 502')
  const strict = await askUntil(front.port, '/strict', r => r.cache !== 'HIT', '/strict to expire')
  t.equal(strict.at(-1)?.status, 502, 'must-revalidate: 502 once expired')
  t.ok(
    strict.every(r => r.cache !== 'STALE'),
    'and never a stale response',
  )
  const short = await askUntil(front.port, '/short', r => r.status === 502, '/short to pass its stale-if-error window')
  t.ok(
    short.some(r => r.cache === 'STALE'),
    'within stale-if-error=1 it was STALE',
  )
  t.equal(short.at(-1)?.status, 502, 'past it, 502')
})

t.test('stale on a 5xx: a 500, 502, 503 or 504 from the upstream serves the stored response', async t => {
  let status = 200
  const up = await startUpstream(t, 'a', (_req, res) => {
    res.writeHead(status, { 'cache-control': status === 404 ? 'no-store' : 'max-age=1' })
    res.end(`status ${status}\n`)
  })
  const front = await startFront(t, up.port)
  await fetch(front.port, '/5xx')
  status = 503
  const r = (await askUntil(front.port, '/5xx', x => x.cache !== 'HIT', 'expiry')).at(-1) as Reply
  t.same([r.status, r.cache, r.body.toString()], [200, 'STALE', 'status 200\n'], 'the 503 is replaced by the stale page')
  status = 404
  const gone = await fetch(front.port, '/5xx')
  t.same([gone.status, gone.cache], [404, 'EXPIRED'], 'a 404 is an answer, not a failure: passed on, EXPIRED')
  t.equal((await fetch(front.port, '/5xx')).cache, 'MISS', 'and a no-store answer dropped the stale copy')
})

t.test('Vary: the gzip and identity variants are kept apart, header values normalized', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    const gzip = /gzip/.test(String(req.headers['accept-encoding']))
    res.writeHead(200, { 'cache-control': 'max-age=60', vary: 'Accept-Encoding', ...(gzip ? { 'content-encoding': 'gzip' } : {}) })
    res.end(gzip ? 'gzipped\n' : 'plain\n')
  })
  const front = await startFront(t, up.port)
  const get = (ae?: string) => fetch(front.port, '/v', { headers: ae === undefined ? {} : { 'accept-encoding': ae } })
  t.equal((await get('gzip, deflate')).cache, 'MISS', 'gzip: MISS')
  t.equal((await get()).cache, 'MISS', 'identity: MISS, a variant of its own')
  const g = await get('GZIP,deflate ')
  t.same([g.cache, g.body.toString()], ['HIT', 'gzipped\n'], 'the same value in other case and spacing is the gzip variant')
  const p = await get()
  t.same([p.cache, p.body.toString()], ['HIT', 'plain\n'], 'identity gets the plain body')
  t.equal((await get('br')).cache, 'MISS', 'another value is another variant')
  t.equal(front.cache.store.entries, 3, 'three variants stored under one URL')
  t.equal(up.seen.length, 3, 'the upstream saw one request per variant')
})

t.test('a truncated body is never stored; the next request is a MISS', async t => {
  let n = 0
  const up = await startUpstream(t, 'a', (_req, res) => {
    n++
    res.writeHead(200, { 'cache-control': 'max-age=60', 'content-length': '100' })
    if (n === 1) {
      res.write('only half of it')
      setImmediate(() => res.socket?.destroy())
    } else res.end('x'.repeat(100))
  })
  const front = await startFront(t, up.port)
  await t.rejects(fetch(front.port, '/cut'), 'the client sees the response cut short')
  t.equal((await fetch(front.port, '/cut')).cache, 'MISS', 'the next request is a MISS')
  t.equal((await fetch(front.port, '/cut')).cache, 'HIT', 'and the whole one was stored')
})

t.test('a 20 MB response streams through intact with --cache-max-object 8mb, and is not stored', async t => {
  const body = Buffer.alloc(20 * 1024 * 1024)
  for (let i = 0; i < body.length; i += 4) body.writeUInt32LE((i * 2654435761) >>> 0, i)
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', ...(req.url === '/sized' ? { 'content-length': String(body.length) } : {}) })
    res.end(body)
  })
  const front = await startFront(t, up.port, { maxObject: 8 * 1024 * 1024 })
  const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex')
  for (const path of ['/chunked', '/sized']) {
    const r = await fetch(front.port, path)
    t.equal(r.body.length, body.length, `${path}: every byte came`)
    t.equal(sha(r.body), sha(body), `${path}: intact (sha256)`)
    t.equal((await fetch(front.port, path)).cache, 'MISS', `${path}: not stored`)
  }
  t.equal(front.cache.store.bytes, 0, 'nothing stored')
})

t.test('the byte budget holds: 3x the budget goes in, the stored bytes never pass it', async t => {
  const budget = 1024 * 1024
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', 'x-padding': 'p'.repeat(2000) })
    res.end(Buffer.alloc(32 * 1024, String(req.url)))
  })
  const front = await startFront(t, up.port, { maxBytes: budget })
  const rss = process.memoryUsage().rss
  let most = 0
  for (let i = 0; i < 100; i++) {
    await fetch(front.port, `/fill/${i}`)
    most = Math.max(most, front.cache.store.bytes)
  }
  t.ok(most <= budget, `the stored bytes peaked at ${most}, within ${budget}`)
  t.ok(front.cache.store.bytes > budget / 2, 'and the budget is used')
  t.ok(front.cache.store.evictions > 0, `older entries were evicted (${front.cache.store.evictions})`)
  t.equal(front.cache.counts().evictions, front.cache.store.evictions, 'and counted')
  t.equal((await fetch(front.port, '/fill/99')).cache, 'HIT', 'the newest is still there')
  t.equal((await fetch(front.port, '/fill/0')).cache, 'MISS', 'the oldest went first')
  t.ok(process.memoryUsage().rss - rss < 64 * 1024 * 1024, 'RSS stayed bounded')
})

t.test('purge: one URL under every Host, a prefix, everything; a fetch running for a purged key stores nothing', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60' }))
  const front = await startFront(t, up.port)
  const paths = ['/a?q=1', '/a?q=2', '/images/x.png', '/images/y.png', '/imagesque']
  for (const p of paths) await fetch(front.port, p)
  await fetch(front.port, '/a?q=1', { headers: { host: 'other.example' } })
  t.equal(front.cache.purge({ url: '/a?q=1' }), 2, 'a URL: under both Hosts')
  t.equal((await fetch(front.port, '/a?q=1')).cache, 'MISS', 'gone')
  t.equal((await fetch(front.port, '/a?q=2')).cache, 'HIT', 'another query stays')
  t.equal(front.cache.purge({ prefix: '/images/' }), 2, 'a prefix: everything under it')
  t.equal((await fetch(front.port, '/imagesque')).cache, 'HIT', 'a sibling that only shares the letters stays')
  t.equal(front.cache.purge({ all: true }), 3, 'everything: what was left')
  t.equal(front.cache.store.entries, 0, 'nothing left')
  t.equal(front.cache.purge({ url: '/nothing' }), 0, 'a URL not stored: 0')
  // A purge while the URL is being fetched: what the fetch brings may predate it.
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const slow = await startUpstream(t, 'b', (_req, res) => {
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('old\n')
    })
  })
  front.upstreamPort = slow.port
  const pending = fetch(front.port, '/racing')
  await until(() => slow.seen.length === 1, 'the fetch to reach the upstream')
  t.equal(front.cache.purge({ all: true }), 0, 'nothing stored yet')
  release()
  t.equal((await pending).body.toString(), 'old\n', 'the client still gets its answer')
  t.equal(front.cache.store.entries, 0, 'but it is not stored')
})

t.test('writes: a POST, PUT, PATCH or DELETE that succeeds invalidates the stored GET; one that fails does not', async t => {
  let writeStatus = 200
  let holdGet = Promise.resolve()
  const up = await startUpstream(t, 'a', (req, res) => {
    if (req.method === 'GET') {
      void holdGet.then(() => {
        res.writeHead(200, { 'cache-control': 'max-age=60' })
        res.end('page\n')
      })
      return
    }
    res.writeHead(writeStatus, req.url === '/form' ? { location: '/items?sort=new', 'content-location': 'http://other.example/items' } : {})
    res.end('written\n')
  })
  const front = await startFront(t, up.port)
  for (const method of ['POST', 'PUT', 'PATCH', 'DELETE']) {
    await fetch(front.port, '/item')
    t.equal((await fetch(front.port, '/item')).cache, 'HIT', `${method}: stored first`)
    // The harness frames no DELETE body (the balancer does); none is needed to invalidate.
    const w = await fetch(front.port, '/item', { method, body: method === 'DELETE' ? undefined : 'x' })
    t.equal(w.cache, 'BYPASS', `${method}: passes, BYPASS`)
    t.equal((await fetch(front.port, '/item')).cache, 'MISS', `${method}: the stored GET is gone`)
  }
  await fetch(front.port, '/items?sort=new')
  await fetch(front.port, '/items')
  await fetch(front.port, '/form', { method: 'POST', body: 'x' })
  t.equal((await fetch(front.port, '/items?sort=new')).cache, 'MISS', 'the Location of the answer is invalidated too')
  t.equal((await fetch(front.port, '/items')).cache, 'HIT', 'a Content-Location on another host is not')
  // A write while a GET of the same URL is being fetched: what the GET brings may predate it.
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  holdGet = held
  const pending = fetch(front.port, '/racing')
  await until(() => up.seen.some(s => s.url === '/racing'), 'the GET to reach the upstream')
  await fetch(front.port, '/racing', { method: 'PUT', body: 'x' })
  release()
  await pending
  holdGet = Promise.resolve()
  t.equal((await fetch(front.port, '/racing')).cache, 'MISS', 'the GET fetched across a write was not stored')
  writeStatus = 500
  await fetch(front.port, '/item', { method: 'POST', body: 'x' })
  t.equal((await fetch(front.port, '/item')).cache, 'HIT', 'a write that failed (500) leaves the stored GET')
  t.equal((await fetch(front.port, '/item', { method: 'OPTIONS' })).cache, 'BYPASS', 'OPTIONS passes, BYPASS')
  t.equal((await fetch(front.port, '/item')).cache, 'HIT', 'and invalidates nothing')
})

t.test("a client's no-cache does not bypass the cache, as in nginx and Varnish", async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60' }))
  const front = await startFront(t, up.port)
  await fetch(front.port, '/')
  t.equal((await fetch(front.port, '/', { headers: { 'cache-control': 'no-cache' } })).cache, 'HIT', 'Cache-Control: no-cache: HIT')
  t.equal((await fetch(front.port, '/', { headers: { pragma: 'no-cache' } })).cache, 'HIT', 'Pragma: no-cache: HIT')
  t.equal((await fetch(front.port, '/', { headers: { 'cache-control': 'max-age=0' } })).cache, 'HIT', 'max-age=0: HIT')
  t.equal(up.seen.length, 1, 'the upstream saw one request')
})

t.test('must-revalidate: a fresh response is a HIT (the library quirk is worked around)', async t => {
  const up = await startUpstream(t, 'a', answering({ 'cache-control': 'max-age=60, must-revalidate' }))
  const front = await startFront(t, up.port)
  await fetch(front.port, '/mr')
  t.equal((await fetch(front.port, '/mr')).cache, 'HIT', 'HIT while fresh')
  const pr = await startUpstream(t, 'b', answering({ 'cache-control': 'max-age=60, proxy-revalidate' }))
  front.upstreamPort = pr.port
  await fetch(front.port, '/pr')
  t.equal((await fetch(front.port, '/pr')).cache, 'HIT', 'proxy-revalidate too')
})

t.test('a client that leaves while its fetch or its wait is under way lets the others go on', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, 'a', (_req, res) => {
    void held.then(() => {
      res.writeHead(200, { 'cache-control': 'max-age=60' })
      res.end('late\n')
    })
  })
  const front = await startFront(t, up.port, { lockTimeout: 3_600_000 })
  // A raw client, so that it can leave mid-request; resolves once the cache has its request.
  const arrive = async (): Promise<Socket> => {
    const s = new Socket()
    const before = front.received
    s.connect(front.port, '127.0.0.1', () => s.write(`GET /left HTTP/1.1\r\nHost: 127.0.0.1:${front.port}\r\n\r\n`))
    await until(() => front.received > before, 'the request to arrive')
    return s
  }
  const leader = await arrive()
  await until(() => up.seen.length === 1, 'the leader to reach the upstream')
  const waiting = fetch(front.port, '/left')
  await until(() => front.received === 2, 'the second request to wait')
  const third = await arrive()
  third.destroy()
  await until(() => front.answered.length === 1, 'the one that left while waiting to be reported')
  t.same(front.answered, ['MISS'], 'reported to the balancer, which logs it')
  leader.destroy()
  await until(() => up.seen.length === 2, 'the waiter to go upstream once the leader left')
  release()
  const r = await waiting
  t.equal(r.body.toString(), 'late\n', 'the one still there gets an answer')
  t.equal(up.seen.length, 2, 'it went upstream itself, once')
})
