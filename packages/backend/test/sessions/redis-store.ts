import t, { type Test } from 'tap'
import { RedisUnavailableError } from '../../src/errors.js'
import { RedisLink } from '../../src/redis/link.js'
import { parseRedisUrl } from '../../src/redis/url.js'
import { RedisSessionStore } from '../../src/sessions/redis-store.js'
import { isSessionId, newSessionId } from '../../src/sessions/store.js'
import { needsRedis, startRedis, type RedisServer } from '../fixtures/redis-server.js'

/** A store on the test's Redis, and a raw client to look at its keys. */
async function store(t: Test, redis: RedisServer, ttl = 1800) {
  const link = new RedisLink({ target: parseRedisUrl(redis.url, 'url'), timeout: 2000 })
  t.teardown(() => link.close())
  return { sessions: new RedisSessionStore({ link, prefix: 'test:', ttl }), client: await link.client() }
}

t.test('visits count in Redis under <prefix>sess:<sid>, and any store on that Redis reads them', needsRedis, async t => {
  const redis = await startRedis(t)
  const a = await store(t, redis)
  const b = await store(t, redis)
  const first = await a.sessions.visit(undefined)
  t.match(first, { visits: 1, created: true }, 'no id: a new session with one visit')
  t.ok(isSessionId(first.sid), 'a random id')
  t.equal(await a.client.get(`test:sess:${first.sid}`), '1', 'the count is in Redis')
  t.same(await b.sessions.visit(first.sid), { sid: first.sid, visits: 2, created: false }, 'another store counts on')
  t.same(await a.sessions.visit(first.sid), { sid: first.sid, visits: 3, created: false }, 'and back')
  t.equal(await b.sessions.peek(first.sid), 3, 'peek reads the count')
  t.equal(await b.sessions.peek(first.sid), 3, 'and adds nothing')
})

t.test("an unknown id starts a fresh session and creates no key of the client's choosing", needsRedis, async t => {
  const redis = await startRedis(t)
  const { sessions, client } = await store(t, redis)
  const forged = newSessionId()
  const visit = await sessions.visit(forged)
  t.match(visit, { visits: 1, created: true }, 'a new session')
  t.not(visit.sid, forged, 'with an id of its own')
  t.equal(await client.exists(`test:sess:${forged}`), 0, 'the forged id is not a key')
  t.equal(await sessions.peek(forged), undefined, 'peek of an unknown id: undefined')
  await client.set(`test:sess:${forged}`, 'not a count')
  t.match(await sessions.visit(forged), { visits: 1, created: true }, 'a key holding something else is no session either')
  t.equal(await sessions.peek(forged), undefined, 'nor to peek')
})

t.test('the TTL slides on each visit and is left alone by peek', needsRedis, async t => {
  const redis = await startRedis(t)
  const { sessions, client } = await store(t, redis, 60)
  const { sid } = await sessions.visit(undefined)
  const key = `test:sess:${sid}`
  t.ok((await client.pTTL(key)) > 59_000, 'a new session lives 60 s')
  await client.pExpire(key, 10_000)
  await sessions.peek(sid)
  t.ok((await client.pTTL(key)) <= 10_000, 'peek does not refresh it')
  await sessions.visit(sid)
  t.ok((await client.pTTL(key)) > 59_000, 'a visit does')
})

t.test('Redis down: visit and peek reject with RedisUnavailableError', needsRedis, async t => {
  const redis = await startRedis(t)
  const { sessions } = await store(t, redis)
  const { sid } = await sessions.visit(undefined)
  await redis.kill()
  await t.rejects(sessions.visit(sid), RedisUnavailableError, 'visit')
  await t.rejects(sessions.visit(undefined), RedisUnavailableError, 'a new session too')
  await t.rejects(sessions.peek(sid), RedisUnavailableError, 'peek')
})
