import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { ResponseCache, entrySize, isStorable, type ResponseCacheOptions } from '../src/cache.js'
import { text, type BufferedResponse } from '../src/response.js'
import { createBackend } from '../src/server.js'

/** A clock the test moves by hand. It starts far from 0: lru-cache treats a start time of 0 as "no TTL". */
function manualClock(): { now: () => number; advance: (ms: number) => void } {
  let ms = 1_000_000
  return { now: () => ms, advance: by => void (ms += by) }
}

interface Harness {
  server: Server
  base: string
  cache: ResponseCache
  /** How many times the handler ran. */
  calls: () => number
}

/**
 * A node:http server that answers every request through a `ResponseCache` with `handler`,
 * so the tests can make the responses the cache must refuse (Set-Cookie, private, ...).
 */
async function serveCached(
  t: Test,
  handler: (req: IncomingMessage, call: number) => BufferedResponse | Promise<BufferedResponse>,
  options: Partial<ResponseCacheOptions> = {},
): Promise<Harness> {
  const cache = new ResponseCache({ ttl: 60, maxBytes: 1024 * 1024, clock: () => performance.now(), ...options })
  let calls = 0
  const server = createServer((req, res) => {
    void cache
      .serve(req, async () => handler(req, ++calls))
      .then(response => res.writeHead(response.status, response.headers).end(response.body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, cache, calls: () => calls }
}

/** GETs (or HEADs) a path and returns what the cache tests look at. */
async function get(base: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${base}${path}`, init)
  return {
    status: res.status,
    xCache: res.headers.get('x-cache'),
    age: res.headers.get('age'),
    cacheControl: res.headers.get('cache-control'),
    body: await res.text(),
  }
}

const numbered = (_req: IncomingMessage, call: number): BufferedResponse => text(200, `response ${call}`)

t.test('a miss stores the response, the next request is a hit', async t => {
  const h = await serveCached(t, numbered)
  const miss = await get(h.base, '/a?x=1')
  t.same(
    miss,
    { status: 200, xCache: 'MISS', age: null, cacheControl: 'public, max-age=60', body: 'response 1' },
    'first request: MISS, max-age is the whole TTL, no Age',
  )
  const hit = await get(h.base, '/a?x=1')
  t.same(
    hit,
    { status: 200, xCache: 'HIT', age: '0', cacheControl: 'public, max-age=60', body: 'response 1' },
    'second request: HIT with the stored body and Age 0',
  )
  t.equal(h.calls(), 1, 'the handler ran once')
  t.equal((await get(h.base, '/a?x=2')).xCache, 'MISS', 'another query is another key')
  t.equal(h.cache.size, 2, 'two entries stored')
})

t.test('Age grows and max-age shrinks with the clock; the entry expires after the TTL', async t => {
  const clock = manualClock()
  const h = await serveCached(t, numbered, { clock: clock.now })
  await get(h.base, '/')
  clock.advance(30_500)
  const hit = await get(h.base, '/')
  t.equal(hit.xCache, 'HIT', 'still fresh after 30.5 s')
  t.equal(hit.age, '30', 'Age is whole seconds since it was stored')
  t.equal(hit.cacheControl, 'public, max-age=30', 'max-age is the whole seconds left')
  clock.advance(29_500)
  const last = await get(h.base, '/')
  t.same([last.xCache, last.age, last.cacheControl], ['HIT', '60', 'public, max-age=0'], 'fresh up to the TTL itself')
  clock.advance(1)
  const expired = await get(h.base, '/')
  t.same([expired.xCache, expired.body], ['MISS', 'response 2'], 'past the TTL: a miss that runs the handler')
})

t.test('the cache is bounded by bytes and drops the least recently used entry', async t => {
  const body = 'x'.repeat(100)
  const size = entrySize(text(200, body))
  t.equal(size, 17 + 100 + 'content-type'.length + 'text/plain; charset=utf-8'.length + 4, 'size = status line + headers + body')
  const h = await serveCached(t, () => text(200, body), { maxBytes: size * 3 })
  for (const path of ['/a', '/b', '/c']) t.equal((await get(h.base, path)).xCache, 'MISS', `${path} stored`)
  t.same([h.cache.size, h.cache.bytes], [3, size * 3], 'three entries fill the bound exactly')
  t.equal((await get(h.base, '/a')).xCache, 'HIT', '/a used again: now the most recent')
  t.equal((await get(h.base, '/d')).xCache, 'MISS', '/d stored')
  t.same([h.cache.size, h.cache.bytes], [3, size * 3], 'still within the bound')
  t.equal((await get(h.base, '/a')).xCache, 'HIT', '/a kept')
  t.equal((await get(h.base, '/b')).xCache, 'MISS', '/b, the least recently used, was evicted')
})

t.test('an entry larger than the whole bound is served but not stored', async t => {
  const h = await serveCached(t, () => text(200, 'y'.repeat(1000)), { maxBytes: 500 })
  const first = await get(h.base, '/big')
  t.same([first.status, first.xCache, first.body.length], [200, 'MISS', 1000], 'served in full, as a miss')
  t.equal((await get(h.base, '/big')).xCache, 'MISS', 'asked again: a miss again')
  t.same([h.cache.size, h.cache.bytes, h.calls()], [0, 0, 2], 'nothing stored; the handler ran each time')
})

t.test('ten concurrent misses run the handler once: 1 MISS, 9 HIT', async t => {
  let arrived = 0
  let allArrived: () => void = () => {}
  const gate = new Promise<void>(resolve => (allArrived = resolve))
  const h = await serveCached(t, async (_req, call) => {
    await gate
    return text(200, `shared ${call}`)
  })
  // This listener runs after the server's own, which has handed the request to the cache:
  // the handler is held until all ten are waiting on it.
  h.server.on('request', () => ++arrived === 10 && allArrived())
  const results = await Promise.all(Array.from({ length: 10 }, () => get(h.base, '/together')))
  t.equal(h.calls(), 1, 'the handler ran once')
  t.same(
    results.map(r => r.xCache).sort(),
    ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS'],
    'the request that ran it: MISS; the nine that waited: HIT',
  )
  t.ok(
    results.every(r => r.body === 'shared 1' && r.status === 200),
    'all ten got the one response',
  )
})

t.test('ten concurrent misses of the real /slow route: one MISS, nine HIT', async t => {
  const backend = createBackend()
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  const { port } = backend.address() as AddressInfo
  const base = `http://127.0.0.1:${port}`
  const results = await Promise.all(Array.from({ length: 10 }, () => get(base, '/slow?ms=300')))
  t.same(
    results.map(r => r.xCache).sort(),
    ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS'],
    'one request ran the handler; the others were answered from it',
  )
  t.ok(
    results.every(r => r.status === 200 && r.body === `Slow response after 300 ms from backend-${port}`),
    'all ten got the slow response',
  )
  t.equal(backend.stats.toJSON()['GET /slow'], 10, 'all ten reached the backend')
})

t.test('responses the cache must not store are marked BYPASS and not stored', async t => {
  const cases: Array<[string, BufferedResponse]> = [
    ['Set-Cookie', text(200, 'for you', { 'set-cookie': 'session=1' })],
    ['Cache-Control: private', text(200, 'for you', { 'cache-control': 'private' })],
    ['Cache-Control: no-store', text(200, 'live', { 'cache-control': 'max-age=5, no-store' })],
    ['a 404', text(404, 'not here')],
    ['a 500', text(500, 'broken')],
  ]
  for (const [what, response] of cases) {
    t.equal(isStorable(response), false, `${what} is not storable`)
    const h = await serveCached(t, () => response)
    const first = await get(h.base, '/p')
    const second = await get(h.base, '/p')
    t.same([first.xCache, second.xCache], ['BYPASS', 'BYPASS'], `${what}: BYPASS both times`)
    t.equal(first.status, response.status, `${what}: the status is kept`)
    t.equal(first.cacheControl, response.headers['cache-control'] ?? null, `${what}: its own Cache-Control is kept`)
    t.same([h.calls(), h.cache.size], [2, 0], `${what}: the handler ran each time, nothing stored`)
  }
  t.equal(isStorable(text(200, 'ok', { 'cache-control': 'public, max-age=10' })), true, 'other Cache-Control values do not stop storing')
})

t.test('concurrent requests that waited on an unshareable response run the handler themselves', async t => {
  let arrived = 0
  let allArrived: () => void = () => {}
  const gate = new Promise<void>(resolve => (allArrived = resolve))
  const h = await serveCached(t, async (_req, call) => {
    await gate
    return text(200, `cookie ${call}`, { 'set-cookie': `n=${call}` })
  })
  h.server.on('request', () => ++arrived === 3 && allArrived())
  const results = await Promise.all(Array.from({ length: 3 }, () => get(h.base, '/mine')))
  t.same(results.map(r => r.xCache), ['BYPASS', 'BYPASS', 'BYPASS'], 'all three BYPASS')
  t.same(results.map(r => r.body).sort(), ['cookie 1', 'cookie 2', 'cookie 3'], 'each got its own response, cookie and all')
  t.equal(h.calls(), 3, 'the handler ran once per request')
})

t.test('a request with Authorization neither reads nor fills the cache', async t => {
  const h = await serveCached(t, numbered)
  const authorization = 'Bearer secret'
  const first = await get(h.base, '/me', { headers: { authorization } })
  t.same([first.xCache, first.body], ['BYPASS', 'response 1'], 'with credentials: BYPASS')
  t.equal(h.cache.size, 0, 'nothing stored')
  t.equal((await get(h.base, '/me')).xCache, 'MISS', 'without credentials: a miss, so the first filled nothing')
  const again = await get(h.base, '/me', { headers: { authorization } })
  t.same([again.xCache, again.body], ['BYPASS', 'response 3'], 'with credentials: not answered from the stored entry')
  t.same((await get(h.base, '/me')).body, 'response 2', 'the stored entry is untouched')
})

t.test('only GET and HEAD go through the cache', async t => {
  const h = await serveCached(t, numbered)
  for (const method of ['POST', 'PUT', 'DELETE']) {
    t.equal((await get(h.base, '/x', { method })).xCache, 'BYPASS', `${method}: BYPASS`)
  }
  t.same([h.calls(), h.cache.size], [3, 0], 'the handler ran each time, nothing stored')
})

t.test('HEAD does not fill the entry but is answered from it', async t => {
  const h = await serveCached(t, numbered)
  const head = await get(h.base, '/h', { method: 'HEAD' })
  t.same([head.xCache, head.body, head.cacheControl], ['MISS', '', 'public, max-age=60'], 'HEAD first: MISS, no body')
  t.equal(h.cache.size, 0, 'the HEAD stored nothing')
  const first = await get(h.base, '/h')
  t.same([first.xCache, first.body], ['MISS', 'response 2'], 'the GET after it is still a miss')
  const cachedHead = await get(h.base, '/h', { method: 'HEAD' })
  t.same([cachedHead.xCache, cachedHead.age, cachedHead.body], ['HIT', '0', ''], "HEAD now: HIT from the GET's entry")
  const refreshed = await get(h.base, '/h', { method: 'HEAD', headers: { 'cache-control': 'no-cache' } })
  t.equal(refreshed.xCache, 'MISS', 'HEAD with no-cache: asks the handler')
  t.equal((await get(h.base, '/h')).body, 'response 2', 'a HEAD never replaces the entry')
  t.equal(h.calls(), 3, 'the handler ran for the two HEAD misses and the GET')
})

t.test('a HEAD whose response may not be stored is marked BYPASS', async t => {
  const h = await serveCached(t, () => text(200, 'x', { 'set-cookie': 'a=1' }))
  t.equal((await get(h.base, '/', { method: 'HEAD' })).xCache, 'BYPASS', 'BYPASS')
})

t.test('Cache-Control: no-cache refetches and refreshes the entry', async t => {
  const h = await serveCached(t, numbered)
  t.equal((await get(h.base, '/n')).body, 'response 1', 'stored')
  const refreshed = await get(h.base, '/n', { headers: { 'cache-control': 'max-age=0, no-cache' } })
  t.same([refreshed.xCache, refreshed.body], ['MISS', 'response 2'], 'no-cache: the handler ran again')
  const hit = await get(h.base, '/n')
  t.same([hit.xCache, hit.body], ['HIT', 'response 2'], 'the refreshed response replaced the entry')
})

t.test('TTL 0 turns the cache off: everything is BYPASS', async t => {
  const h = await serveCached(t, numbered, { ttl: 0 })
  const first = await get(h.base, '/')
  const second = await get(h.base, '/')
  t.same([first.xCache, second.xCache], ['BYPASS', 'BYPASS'], 'BYPASS both times')
  t.same([first.age, first.cacheControl], [null, null], 'no Age, no Cache-Control added')
  t.same([h.calls(), h.cache.size, h.cache.bytes], [2, 0, 0], 'the handler ran each time; the cache holds nothing')
  t.equal(h.cache.ttl, 0, 'the TTL is reported')
})

t.test("the two representations of / are cached apart: a browser never gets curl's text, nor curl the page", async t => {
  const backend = createBackend({ id: 'varied' })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  const base = `http://127.0.0.1:${(backend.address() as AddressInfo).port}`
  const browser = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' }
  const curl = { accept: '*/*' }
  const look = async (headers: Record<string, string>, method = 'GET') => {
    const res = await fetch(`${base}/`, { headers, method })
    return [res.headers.get('x-cache'), res.headers.get('content-type'), res.headers.get('vary'), (await res.text()).startsWith('<!doctype')]
  }
  const HTML = 'text/html; charset=utf-8'
  const TEXT = 'text/plain; charset=utf-8'
  t.same(await look(browser), ['MISS', HTML, 'Accept', true], 'a browser first: the page, a miss')
  t.same(await look(curl), ['MISS', TEXT, 'Accept', false], 'then curl: the text, a miss of its own, not the stored page')
  t.same(await look(browser), ['HIT', HTML, 'Accept', true], 'the browser again: its page, from the cache')
  t.same(await look(curl), ['HIT', TEXT, 'Accept', false], 'curl again: its text, from the cache')
  t.same(await look({ accept: 'text/html' }), ['HIT', HTML, 'Accept', true], 'another Accept naming text/html: the same page entry')
  t.same(await look({}, 'HEAD'), ['HIT', TEXT, 'Accept', false], "a HEAD with fetch's */*: from the text entry")
  t.same(await look(browser, 'HEAD'), ['HIT', HTML, 'Accept', false], 'a HEAD from a browser: from the page entry')
  t.equal(backend.cache.size, 2, 'two entries for one target')

  // The other order, in a fresh backend: curl first, so a text entry exists before any page.
  const other = createBackend({ id: 'varied' })
  other.listen(0, '127.0.0.1')
  await once(other, 'listening')
  t.teardown(() => new Promise<void>(resolve => other.close(() => resolve())))
  const otherBase = `http://127.0.0.1:${(other.address() as AddressInfo).port}`
  const first = await fetch(`${otherBase}/`, { headers: curl })
  t.equal(first.headers.get('content-type'), TEXT, 'curl first: text')
  const page = await fetch(`${otherBase}/`, { headers: browser })
  t.same([page.headers.get('x-cache'), page.headers.get('content-type')], ['MISS', HTML], 'then a browser: a miss, the page')
})
