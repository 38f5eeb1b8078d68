import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import t from 'tap'
import { primaryKey } from '../../src/cache/store.js'
import { fetchHeaders } from '../../src/cache/taps.js'
import { startUpstream } from '../fixtures/servers.js'
import { askUntil, fetch, startFront, until, type Reply } from './fixtures/front.js'

/** Sends raw bytes and resolves with everything the front answered once it closes. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = new Socket()
    let got = ''
    s.on('data', d => (got += d))
    s.on('close', () => resolve(got))
    s.on('error', reject)
    s.connect(port, '127.0.0.1', () => s.write(text))
  })
}

t.test('fetchHeaders: the client conditionals go, the stored validators come, as the library makes them', async t => {
  const req = {
    url: '/x',
    headers: { host: 'h', 'if-none-match': '"client"', 'if-range': '"c"', accept: 'text/html' },
  } as unknown as IncomingMessage
  t.same(fetchHeaders(req, undefined), { 'if-none-match': undefined, 'if-range': undefined }, 'a miss: the conditionals removed')
  const plain = { url: '/x', headers: { host: 'h' } } as unknown as IncomingMessage
  t.equal(fetchHeaders(plain, undefined), undefined, 'nothing to change: undefined')
})

t.test('background refreshes: a 304, a 5xx, an uncacheable answer and no upstream at all', async t => {
  let mode: 'ok' | '304' | '503' | 'private' = 'ok'
  let release = (): void => {}
  let held: Promise<void> = Promise.resolve()
  const up = await startUpstream(t, 'a', (req, res) => {
    void held.then(() => {
      const headers = {
        'cache-control': mode === 'private' ? 'private' : 'max-age=1, stale-while-revalidate=60',
        etag: '"v"',
        vary: 'Accept-Language',
      }
      if (mode === '304' && req.headers['if-none-match'] === '"v"') {
        res.writeHead(304, headers)
        res.end()
        return
      }
      res.writeHead(mode === '503' ? 503 : 200, headers)
      res.end(`${mode}\n`)
    })
  })
  const front = await startFront(t, up.port)
  const lang = { 'accept-language': 'EN, fr' }
  const stale = (what: string) => askUntil(front.port, '/bg', r => r.cache !== 'HIT', what, { headers: lang })
  await fetch(front.port, '/bg', { headers: lang })

  mode = '304'
  held = new Promise<void>(resolve => (release = resolve))
  t.equal((await stale('expiry before the 304')).at(-1)?.cache, 'STALE', 'the request that starts the refresh: STALE')
  const during = await fetch(front.port, '/bg', { headers: { 'accept-language': 'en,fr' } })
  t.same([during.cache, during.body.toString()], ['UPDATING', 'ok\n'], 'one during the refresh (same selection, other spelling): UPDATING')
  release()
  await until(() => front.refreshes.done === 1, 'the 304 refresh')
  t.equal(up.seen[1]?.headers['if-none-match'], '"v"', 'the refresh revalidated with the ETag')
  t.equal(up.seen[1]?.headers['accept-language'], 'EN, fr', 'sending the Vary header as the stored request had it')
  t.equal((await fetch(front.port, '/bg', { headers: lang })).cache, 'HIT', 'the 304 made it fresh')

  mode = '503'
  t.equal((await stale('expiry before the 503')).at(-1)?.cache, 'STALE', 'STALE again')
  await until(() => front.refreshes.done === 2, 'the 503 refresh')
  const kept = await fetch(front.port, '/bg', { headers: lang })
  t.same([kept.cache, kept.body.toString()], ['STALE', 'ok\n'], 'a 503 keeps the stale copy, which starts another refresh')
  await until(() => front.refreshes.done === 3, 'that refresh')

  mode = 'private'
  await fetch(front.port, '/bg', { headers: lang })
  await until(() => front.refreshes.done === 4, 'the refresh that finds it private')
  const gone = await fetch(front.port, '/bg', { headers: lang })
  t.same([gone.cache, gone.body.toString()], ['MISS', 'private\n'], 'an answer that may not be stored drops the stale copy')

  mode = 'ok'
  await fetch(front.port, '/bg2', { headers: lang })
  await up.close()
  await askUntil(front.port, '/bg2', r => r.cache !== 'HIT', 'expiry before the upstream is gone', { headers: lang })
  await until(() => front.refreshes.done === 5, 'the refresh that finds no upstream')
  t.equal((await fetch(front.port, '/bg2', { headers: lang })).body.toString(), 'ok\n', 'no upstream: the stale copy stays')
})

t.test('a 304 that now says no-store serves the stored body once and drops it; one for a purged key stores nothing', async t => {
  let cc = 'max-age=1'
  let release = (): void => {}
  let held: Promise<void> = Promise.resolve()
  const up = await startUpstream(t, 'a', (req, res) => {
    void held.then(() => {
      res.writeHead(req.headers['if-none-match'] === '"v"' ? 304 : 200, { 'cache-control': cc, etag: '"v"' })
      res.end(req.headers['if-none-match'] === '"v"' ? undefined : 'stored\n')
    })
  })
  const front = await startFront(t, up.port)
  await fetch(front.port, '/ns')
  cc = 'no-store'
  const last = (await askUntil(front.port, '/ns', r => r.cache !== 'HIT', 'expiry')).at(-1) as Reply
  t.same([last.cache, last.body.toString()], ['REVALIDATED', 'stored\n'], 'REVALIDATED with the stored body')
  t.equal(front.cache.store.entries, 0, 'and dropped')
  cc = 'max-age=1'
  await fetch(front.port, '/p')
  const key = primaryKey(`127.0.0.1:${front.port}`, '/p')
  await until(() => (front.cache.store.find(key, {})?.policy.age() ?? 0) >= 1, '/p to expire')
  held = new Promise<void>(resolve => (release = resolve))
  const seen = up.seen.length
  const pending = fetch(front.port, '/p')
  await until(() => up.seen.length > seen, 'the revalidation to reach the upstream')
  t.equal(front.cache.purge({ url: '/p' }), 1, 'purged while it revalidates')
  release()
  t.same(
    [(await pending).cache, (await pending).body.toString()],
    ['REVALIDATED', 'stored\n'],
    'the client still gets the revalidated page',
  )
  t.equal(front.cache.store.entries, 0, 'but the purge stands')
})

t.test('copies being collected stay within the budget: past it, a response streams through unstored', async t => {
  let release = (): void => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60' })
    res.write(Buffer.alloc(48 * 1024, 'a'))
    // /first holds the rest of its body until /second came whole.
    if (req.url === '/first') void held.then(() => res.end())
    else res.end()
  })
  const front = await startFront(t, up.port, { maxBytes: 64 * 1024 })
  const first = fetch(front.port, '/first')
  await until(() => up.seen.length === 1, 'the first to stream')
  const second = await fetch(front.port, '/second')
  t.equal(second.body.length, 48 * 1024, 'the second streams through whole')
  release()
  t.equal((await first).body.length, 48 * 1024, 'the first too')
  t.equal((await fetch(front.port, '/first')).cache, 'HIT', 'the first was stored')
  t.equal((await fetch(front.port, '/second')).cache, 'MISS', 'the second, which had no room to be copied, was not')
})

t.test('the odd requests: a HEAD with Authorization, a write with no Host, a Location that does not parse', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', ...(req.method === 'POST' ? { location: 'http://[bad' } : {}) })
    res.end(req.method === 'HEAD' ? undefined : 'x')
  })
  const front = await startFront(t, up.port)
  t.equal(
    (await fetch(front.port, '/h', { method: 'HEAD', headers: { authorization: 'Basic eA==' } })).cache,
    'BYPASS',
    'a HEAD with Authorization: BYPASS',
  )
  await fetch(front.port, '/w')
  t.equal((await fetch(front.port, '/w', { method: 'POST', body: 'x' })).status, 200, 'a POST whose Location does not parse')
  t.equal((await fetch(front.port, '/w')).cache, 'MISS', 'still invalidates its own URL')
  const answer = await raw(front.port, 'POST /w HTTP/1.0\r\nContent-Length: 1\r\n\r\nx')
  t.match(answer, /^HTTP\/1\.1 200 .*x-cache-status: BYPASS/is, 'a write with no Host passes')
})

t.test('a request that passes (a HEAD, a Range) on an expired entry is served stale when the upstream fails', async t => {
  let status = 200
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(status, { 'cache-control': 'max-age=1' })
    res.end(req.method === 'HEAD' ? undefined : '0123456789')
  })
  const front = await startFront(t, up.port)
  await fetch(front.port, '/pass')
  const key = primaryKey(`127.0.0.1:${front.port}`, '/pass')
  await until(() => (front.cache.store.find(key, {})?.policy.age() ?? 0) >= 1, 'expiry')
  status = 502
  const range = await fetch(front.port, '/pass', { headers: { range: 'bytes=2-4' } })
  t.same([range.status, range.cache, range.body.toString()], [206, 'STALE', '234'], 'a Range answered 502 upstream: the stale range')
  status = 200
  const fine = await fetch(front.port, '/pass', { method: 'HEAD' })
  t.same([fine.status, fine.cache], [200, 'EXPIRED'], 'a HEAD the upstream answers: EXPIRED, passed on')
  await up.close()
  const head = await fetch(front.port, '/pass', { method: 'HEAD' })
  t.same([head.status, head.cache, head.headers['content-length']], [200, 'STALE', '10'], 'a HEAD with no upstream: the stale head')
  t.equal((await fetch(front.port, '/other', { method: 'HEAD' })).status, 502, 'one with nothing stored: 502')
})
