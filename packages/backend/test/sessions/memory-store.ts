import t from 'tap'
import { ConfigError } from '../../src/errors.js'
import { MemorySessionStore } from '../../src/sessions/memory-store.js'

/** What a session id looks like: 16 random bytes in base64url. */
const SID = /^[A-Za-z0-9_-]{22}$/

t.test('MemorySessionStore counts visits per session and starts one for an unknown id', async t => {
  const store = new MemorySessionStore()
  const first = await store.visit(undefined)
  t.match(first, { visits: 1, created: true }, 'no id: a new session with one visit')
  t.match(first.sid, SID, 'the id is 16 random bytes in base64url')
  t.same(await store.visit(first.sid), { sid: first.sid, visits: 2, created: false }, 'its id: the count climbs')
  t.same(await store.visit(first.sid), { sid: first.sid, visits: 3, created: false }, 'and climbs')
  const other = await store.visit('made-up')
  t.match(other, { visits: 1, created: true }, 'an unknown id: a new session')
  t.not(other.sid, 'made-up', 'with an id of its own, not the one sent')
  t.not(other.sid, first.sid, 'and not an existing one')
  t.equal(await store.peek(first.sid), 3, 'peek reads the count')
  t.equal(await store.peek(first.sid), 3, 'and does not add to it')
  t.equal(await store.peek('made-up'), undefined, 'peek of an unknown id: undefined')
  t.equal(store.size, 2, 'two sessions held')
})

t.test('MemorySessionStore is bounded: past max the least recently visited session goes', async t => {
  const store = new MemorySessionStore({ max: 2 })
  const a = (await store.visit(undefined)).sid
  const b = (await store.visit(undefined)).sid
  await store.visit(a)
  const c = (await store.visit(undefined)).sid
  t.equal(store.size, 2, 'never more than max')
  t.equal(await store.peek(b), undefined, 'b, visited least recently, was evicted')
  t.equal(await store.peek(a), 2, 'a, visited again, stays')
  t.equal(await store.peek(c), 1, 'c, the newest, stays')
  t.match(await store.visit(b), { visits: 1, created: true }, 'an evicted session starts over')
})

t.test('MemorySessionStore forgets a session after ttl seconds without a visit', async t => {
  let now = 1_000_000
  const store = new MemorySessionStore({ ttl: 60, clock: () => now })
  const { sid } = await store.visit(undefined)
  now += 59_999
  t.match(await store.visit(sid), { visits: 2, created: false }, 'just inside the ttl: same session')
  now += 59_999
  t.match(await store.visit(sid), { visits: 3, created: false }, 'the ttl counts from the last visit, not the first')
  now += 30_000
  t.equal(await store.peek(sid), 3, 'peek reads the count')
  now += 30_001
  t.equal(await store.peek(sid), undefined, 'peek did not refresh the timeout: expired 60 s after the last visit')
  t.match(await store.visit(sid), { visits: 1, created: true }, 'an expired session starts over')
})

t.test('MemorySessionStore rejects bad bounds with a ConfigError that names them', async t => {
  const cases = [
    { options: { max: 0 }, message: /^sessions max: 0 is not a whole number from 1 to 1000000$/ },
    { options: { max: 1.5 }, message: /^sessions max: 1\.5 / },
    { options: { max: 2_000_000 }, message: /^sessions max: 2000000 / },
    { options: { ttl: 0 }, message: /^sessions ttl: 0 is not a whole number from 1 to 31536000$/ },
    { options: { ttl: -1 }, message: /^sessions ttl: -1 / },
  ]
  for (const { options, message } of cases) {
    t.throws(() => new MemorySessionStore(options), ConfigError, `${JSON.stringify(options)}: a ConfigError`)
    t.throws(() => new MemorySessionStore(options), { message }, `${JSON.stringify(options)}: the message says why`)
  }
})
