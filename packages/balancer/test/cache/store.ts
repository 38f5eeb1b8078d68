import CachePolicy from 'http-cache-semantics'
import t from 'tap'
import { createEntry, ENTRY_OVERHEAD, INLINE_MAX, refreshEntry, type Entry } from '../../src/cache/entry.js'
import { CacheStore, primaryKey } from '../../src/cache/store.js'
import { variantKey } from '../../src/cache/vary.js'

const freshness = { lifetime: 60, staleWhileRevalidate: 0, staleIfError: 0, mayServeStale: true }
const policy = new CachePolicy({ url: '/', headers: {} }, { status: 200, headers: {} })

function entry(body: string, vary: string[] = [], selection: Record<string, string> = {}, rawHeaders: string[] = []): Entry {
  return createEntry({
    status: 200,
    reason: 'OK',
    rawHeaders,
    body: Buffer.from(body),
    policy,
    freshness,
    varyNames: vary,
    variantKey: variantKey(vary, selection),
  })
}

t.test('createEntry: the head a hit sends, and the size it counts', async t => {
  const e = entry('hello', [], {}, [
    'Content-Type',
    'text/plain',
    'Connection',
    'x-hop',
    'X-Hop',
    '1',
    'Transfer-Encoding',
    'chunked',
    'Age',
    '5',
    'Content-Length',
    '99',
    'ETag',
    '"e"',
    'Last-Modified',
    'then',
    'X-Cache-Status',
    'HIT',
  ])
  t.same(
    e.head,
    ['Content-Type', 'text/plain', 'ETag', '"e"', 'Last-Modified', 'then', 'Content-Length', '5'],
    'no hop-by-hop, Connection-named, Age or upstream X-Cache-Status; the real length',
  )
  t.same([e.etag, e.lastModified], ['"e"', 'then'], 'validators read')
  t.equal(
    e.size,
    ENTRY_OVERHEAD + 17 + 2 + 5 + 5 + (12 + 10 + 4) + (4 + 3 + 4) + (13 + 4 + 4) + 18 + 1,
    'size: overhead, status line, body (and its string), headers as on the wire',
  )
  t.equal(e.text, 'hello', 'a small body is kept as a string too')
  t.equal(entry('x'.repeat(INLINE_MAX + 1)).text, undefined, 'a larger one is not')
  const linked = entry('hello', [], {}, ['Link', '</a>', 'Content-Type', 'text/plain', 'Link', '</b>'])
  const refreshed = refreshEntry(
    linked,
    ['Content-Type', 'text/html', 'Content-Length', '0', 'X-New', '1', 'Link', '</c>', 'Connection', 'close', 'x-new', '2'],
    policy,
    freshness,
  )
  t.same(
    refreshed.head,
    ['Link', '</c>', 'Content-Type', 'text/html', 'X-New', '1', 'x-new', '2', 'Content-Length', '5'],
    "a 304's fields replace the stored ones, every line of a name, or join them; the stored length stays",
  )
  t.equal(refreshed.body, linked.body, 'the stored body')
})

t.test('the store: variants per URL, newest first, at most maxVariants; a new Vary replaces them', async t => {
  const s = new CacheStore(1024 * 1024, 3)
  const key = primaryKey('h', '/v')
  const variant = (lang: string) => entry(lang, ['accept-language'], { 'accept-language': lang })
  for (const lang of ['en', 'fr', 'de']) t.ok(s.put(key, variant(lang)), `${lang} stored`)
  t.equal(s.find(key, { 'accept-language': 'FR' })?.body.toString(), 'fr', 'each selects its own')
  t.equal(s.entries, 3, 'three variants')
  s.put(key, variant('it'))
  t.equal(s.entries, 3, 'a fourth pushes out the oldest')
  t.equal(s.find(key, { 'accept-language': 'en' }), undefined, 'en went')
  s.put(key, variant('fr'))
  t.equal(s.entries, 3, 'the same selection replaces its variant')
  t.equal(s.find(key, { 'accept-language': 'xx' }), undefined, 'no match: undefined')
  s.put(key, entry('plain'))
  t.equal(s.entries, 1, 'a response that varies on nothing replaces them all')
  t.equal(s.find(key, { 'accept-language': 'fr' })?.body.toString(), 'plain', 'and answers everyone')
  const one = s.find(key, {}) as Entry
  s.remove(key, variant('zz'))
  t.equal(s.entries, 1, 'removing one not stored changes nothing')
  s.remove(key, one)
  t.equal(s.entries, 0, 'removing the last empties the URL')
  s.remove(primaryKey('h', '/none'), one)
  t.equal(s.delete(primaryKey('h', '/none')), 0, 'deleting a URL not stored removes 0')
  const twoKey = primaryKey('h', '/two')
  s.put(twoKey, variant('en'))
  s.put(twoKey, variant('fr'))
  s.remove(twoKey, s.find(twoKey, { 'accept-language': 'en' }) as Entry)
  t.equal(s.entries, 1, 'removing one of two leaves the other')
})

t.test('the store: within its budget always; an entry larger than all of it is refused', async t => {
  const big = entry('x'.repeat(3000))
  const s = new CacheStore(big.size * 2 + 10)
  t.notOk(s.put(primaryKey('h', '/huge'), entry('x'.repeat(big.size * 3))), 'larger than the budget: refused')
  for (let i = 0; i < 5; i++) {
    s.put(primaryKey('h', `/${i}`), entry('x'.repeat(3000)))
    t.ok(s.bytes <= s.maxBytes, `after ${i + 1}: ${s.bytes} within ${s.maxBytes}`)
  }
  t.equal(s.entries, 2, 'two fit')
  t.equal(s.evictions, 3, 'three were evicted')
  const key = primaryKey('h', '/vv')
  const vs = new CacheStore(big.size * 2 + 10)
  for (const lang of ['a', 'b', 'c']) vs.put(key, entry('x'.repeat(3000), ['accept-language'], { 'accept-language': lang }))
  t.equal(vs.entries, 2, "a URL's variants together stay within the budget: the oldest goes")
  t.equal(vs.evictions, 0, 'which is not an eviction')
  t.equal(vs.clear(), 2, 'clear counts what it removed')
  t.equal(vs.bytes, 0, 'and holds nothing')
})
