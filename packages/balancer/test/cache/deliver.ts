import t from 'tap'
import { parseRange } from '../../src/cache/deliver.js'
import { startUpstream } from '../fixtures/servers.js'
import { fetch, startFront } from './fixtures/front.js'

const BODY = '0123456789abcdefghij'

t.test('parseRange: one range, suffixes, and what gets the whole body or a 416', async t => {
  const cases: [string, ReturnType<typeof parseRange>][] = [
    ['bytes=0-4', { start: 0, end: 4 }],
    ['bytes=5-', { start: 5, end: 19 }],
    ['bytes=-3', { start: 17, end: 19 }],
    ['bytes=-50', { start: 0, end: 19 }],
    ['bytes=10-99', { start: 10, end: 19 }],
    ['BYTES=1-2', { start: 1, end: 2 }],
    ['bytes = 1-2', 'whole'],
    ['bytes=0-1,5-6', 'whole'],
    ['bytes=-', 'whole'],
    ['items=0-1', 'whole'],
    ['bytes=5-2', 'whole'],
    ['bytes=20-', 'unsatisfiable'],
    ['bytes=-0', 'unsatisfiable'],
  ]
  for (const [header, want] of cases) t.same(parseRange(header, BODY.length), want, `${header} on 20 bytes`)
})

t.test('a stored response answers a Range, a HEAD and a conditional request itself', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(200, { 'cache-control': 'max-age=60', etag: '"e1"', 'last-modified': 'Mon, 01 Jan 2024 00:00:00 GMT' })
    res.end(req.method === 'HEAD' ? undefined : BODY)
  })
  const front = await startFront(t, up.port)
  const head = await fetch(front.port, '/r', { method: 'HEAD' })
  t.same([head.cache, head.status, head.body.length], ['MISS', 200, 0], 'a HEAD that finds nothing goes upstream as a HEAD')
  t.equal(up.seen[0]?.method, 'HEAD', 'as a HEAD')
  t.equal((await fetch(front.port, '/r', { method: 'HEAD' })).cache, 'MISS', 'and stores nothing')
  const ranged = await fetch(front.port, '/r', { headers: { range: 'bytes=0-3' } })
  t.same([ranged.cache, ranged.status], ['MISS', 200], 'a Range that finds nothing goes upstream as is (this one ignores it)')
  t.equal((await fetch(front.port, '/r')).cache, 'MISS', 'and stores nothing either')
  t.equal((await fetch(front.port, '/r')).cache, 'HIT', 'a plain GET stored it')
  const part = await fetch(front.port, '/r', { headers: { range: 'bytes=5-9' } })
  t.same([part.status, part.cache, part.body.toString()], [206, 'HIT', '56789'], 'a Range on a hit: 206 with the right bytes')
  t.equal(part.headers['content-range'], 'bytes 5-9/20', 'and Content-Range')
  t.equal(part.headers['content-length'], '5', 'and the part length')
  const many = await fetch(front.port, '/r', { headers: { range: 'bytes=0-1,5-6' } })
  t.same([many.status, many.body.toString()], [200, BODY], 'several ranges: the whole 200')
  const past = await fetch(front.port, '/r', { headers: { range: 'bytes=99-' } })
  t.same([past.status, past.headers['content-range']], [416, 'bytes */20'], 'a range past the end: 416')
  const stale = await fetch(front.port, '/r', { headers: { range: 'bytes=0-1', 'if-range': '"old"' } })
  t.same([stale.status, stale.body.toString()], [200, BODY], 'an If-Range that no longer holds: the whole body')
  const held = await fetch(front.port, '/r', { headers: { range: 'bytes=0-1', 'if-range': 'Mon, 01 Jan 2024 00:00:00 GMT' } })
  t.same([held.status, held.body.toString()], [206, '01'], 'one that holds (a date): the range')
  const etagRange = await fetch(front.port, '/r', { headers: { range: 'bytes=0-1', 'if-range': '"e1"' } })
  t.equal(etagRange.status, 206, 'one that holds (an ETag): the range')
  const h = await fetch(front.port, '/r', { method: 'HEAD' })
  t.same(
    [h.cache, h.status, h.headers['content-length'], h.body.length],
    ['HIT', 200, '20', 0],
    'a HEAD from the GET entry: its head, no body',
  )
  const hr = await fetch(front.port, '/r', { method: 'HEAD', headers: { range: 'bytes=0-1' } })
  t.same([hr.status, hr.body.length], [206, 0], 'a ranged HEAD: the 206 head alone')
  const inm = await fetch(front.port, '/r', { headers: { 'if-none-match': 'W/"zz", W/"e1"' } })
  t.same([inm.status, inm.cache, inm.body.length], [304, 'HIT', 0], 'If-None-Match naming the stored ETag: 304')
  t.equal((await fetch(front.port, '/r', { headers: { 'if-none-match': '*' } })).status, 304, 'If-None-Match: * too')
  t.equal((await fetch(front.port, '/r', { headers: { 'if-none-match': '"other"' } })).status, 200, 'another ETag: 200')
  const ims = await fetch(front.port, '/r', { headers: { 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } })
  t.equal(ims.status, 304, 'If-Modified-Since after Last-Modified: 304')
  t.equal(
    (await fetch(front.port, '/r', { headers: { 'if-modified-since': 'Sun, 31 Dec 2023 00:00:00 GMT' } })).status,
    200,
    'before it: 200',
  )
  t.equal((await fetch(front.port, '/r', { headers: { 'if-modified-since': 'not a date' } })).status, 200, 'not a date: 200')
  t.equal(up.seen.length, 4, 'none of those reached the upstream')
})

t.test('a stored 204 has no Content-Length; a response without validators is never 304', async t => {
  const up = await startUpstream(t, 'a', (req, res) => {
    res.writeHead(req.url === '/empty' ? 204 : 200, { 'cache-control': 'max-age=60', ...(req.url === '/empty' ? { etag: '"n"' } : {}) })
    res.end(req.url === '/empty' ? undefined : 'plain')
  })
  const front = await startFront(t, up.port)
  await fetch(front.port, '/empty')
  const e = await fetch(front.port, '/empty', { headers: { range: 'bytes=0-1', 'if-none-match': '"x"' } })
  t.same([e.status, e.cache, e.headers['content-length']], [204, 'HIT', undefined], 'a 204 HIT, no Content-Length, no range')
  const n = await fetch(front.port, '/empty', { headers: { 'if-none-match': '"n"' } })
  t.same([n.status, n.headers.etag], [304, '"n"'], 'a 204 whose ETag matches: 304')
  await fetch(front.port, '/plain')
  const p = await fetch(front.port, '/plain', { headers: { 'if-none-match': '"x"', 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } })
  t.equal(p.status, 200, 'no ETag to match: 200')
  const q = await fetch(front.port, '/plain', { headers: { 'if-modified-since': 'Tue, 02 Jan 2024 00:00:00 GMT' } })
  t.equal(q.status, 200, 'no Last-Modified to compare: 200')
})
