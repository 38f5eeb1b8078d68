import { once } from 'node:events'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { decodeEntry, encodeEntry, SharedResponseCache, type SharedResponseCacheOptions } from '../../src/cache/shared-cache.js'
import { RedisLink } from '../../src/redis/link.js'
import { parseRedisUrl } from '../../src/redis/url.js'
import { text, type BufferedResponse } from '../../src/response.js'
import { Lines } from '../fixtures/log.js'
import { needsRedis, startRedis, type RedisServer } from '../fixtures/redis-server.js'
import { redisRelay } from '../fixtures/relay.js'

type Respond = (req: IncomingMessage, call: number) => BufferedResponse | Promise<BufferedResponse>

/** The handler runs of all the machines of one test: each machine counts into it. */
interface Runs {
  count: number
}

interface Machine {
  base: string
  link: RedisLink
  lines: Lines
}

/**
 * One "machine": a node:http server answering through its own `SharedResponseCache` and
 * `RedisLink` on the test's Redis, every handler run counted in `runs`.
 */
async function machine(
  t: Test,
  redis: RedisServer,
  runs: Runs,
  respond: Respond,
  options: Partial<SharedResponseCacheOptions> & { timeout?: number } = {},
  arrived: () => void = () => {},
): Promise<Machine> {
  const lines = new Lines()
  const link = new RedisLink({
    target: parseRedisUrl(redis.url, 'url'),
    log: lines.push,
    timeout: options.timeout ?? 2000,
    probeInterval: 100,
  })
  const cache = new SharedResponseCache({
    ttl: 60,
    maxBytes: 1024 * 1024,
    clock: () => performance.now(),
    link,
    prefix: 'test:',
    ...options,
  })
  const server = createServer((req, res) => {
    arrived()
    void cache
      .serve(req, async () => respond(req, ++runs.count), (req.headers['x-variant'] as string | undefined) ?? '')
      .then(response => res.writeHead(response.status, response.headers).end(response.body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise(resolve => server.close(resolve))
    await link.close()
  })
  await link.run(c => c.ping())
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, link, lines }
}

/** A raw client on the test's Redis, to look at and tamper with the keys. */
async function raw(t: Test, redis: RedisServer) {
  const link = new RedisLink({ target: parseRedisUrl(redis.url, 'url') })
  t.teardown(() => link.close())
  return link.client()
}

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

const numbered: Respond = (_req, call) => text(200, `response ${call}`)

t.test('a MISS on one machine is a HIT on the other, stored in Redis before the MISS is answered', needsRedis, async t => {
  const redis = await startRedis(t)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered)
  const b = await machine(t, redis, runs, numbered)
  const client = await raw(t, redis)
  const miss = await get(a.base, '/page?x=1')
  t.match(miss, { status: 200, xCache: 'MISS', age: null, cacheControl: 'public, max-age=60', body: 'response 1' }, 'machine a misses')
  const pttl = await client.pTTL('test:cache:/page?x=1')
  t.ok(pttl > 55_000 && pttl <= 60_000, `the entry is in Redis when the MISS arrives, with PX of the TTL (${pttl} ms left)`)
  t.equal(await client.exists('test:lock:/page?x=1'), 0, 'the fill lock is gone')
  t.match(
    await get(b.base, '/page?x=1'),
    { xCache: 'HIT', age: '0', cacheControl: 'public, max-age=60', body: 'response 1' },
    'machine b hits',
  )
  t.match(await get(b.base, '/page?x=2'), { xCache: 'MISS', body: 'response 2' }, 'the query is part of the key')
  t.equal(runs.count, 2, 'two handler runs in all')
})

t.test('each representation of a target is an entry of its own: the variant follows a space', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered)
  t.match(await get(a.base, '/', { headers: { 'x-variant': 'html' } }), { xCache: 'MISS', body: 'response 1' }, 'the html representation')
  t.match(await get(a.base, '/'), { xCache: 'MISS', body: 'response 2' }, 'the plain one is another entry')
  t.same((await client.keys('test:cache:*')).sort(), ['test:cache:/', 'test:cache:/ html'], 'two keys in Redis')
})

t.test('Age comes from the PTTL in Redis, whichever machine stored the entry', needsRedis, async t => {
  const redis = await startRedis(t)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered)
  const b = await machine(t, redis, runs, numbered)
  const client = await raw(t, redis)
  await get(a.base, '/aged')
  await client.pExpire('test:cache:/aged', 60_000 - 2500)
  t.match(
    await get(b.base, '/aged'),
    { xCache: 'HIT', age: '2', cacheControl: 'public, max-age=58' },
    '2.5 s of the TTL gone: Age 2, max-age 58',
  )
})

/**
 * A handler that waits until `n` requests have reached the machines before it answers, so they
 * are certainly concurrent however fast or slow this machine is; `arrived` counts one.
 */
function gate(n: number, respond: Respond = numbered) {
  let count = 0
  let open: () => void = () => {}
  const opened = new Promise<void>(resolve => (open = resolve))
  return {
    arrived: () => void (++count === n && open()),
    respond: (async (req, call) => {
      await opened
      return respond(req, call)
    }) as Respond,
  }
}

t.test('ten concurrent misses spread over two machines run the handler once: 1 MISS, 9 HIT', needsRedis, async t => {
  const redis = await startRedis(t)
  const runs = { count: 0 }
  const g = gate(10)
  const machines = [await machine(t, redis, runs, g.respond, {}, g.arrived), await machine(t, redis, runs, g.respond, {}, g.arrived)]
  const results = await Promise.all(Array.from({ length: 10 }, (_, i) => get((machines[i % 2] as Machine).base, '/slow')))
  t.equal(runs.count, 1, 'the handler ran once in all')
  t.same(results.map(r => r.xCache).sort(), ['HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'HIT', 'MISS'], '1 MISS, 9 HIT')
  t.ok(
    results.every(r => r.body === 'response 1'),
    'all ten got the one response',
  )
})

/**
 * A TCP relay to `port` that can hold a machine's request to take a fill lock: armed, it keeps
 * back the first write that names `lockKey` other than the look (which reads it with EXISTS),
 * and every write after it on that connection, until released, so that another machine's whole
 * fill can land in between, in a fixed order rather than by luck.
 */
async function lockHoldingRelay(t: Test, port: number, lockKey: string) {
  let armed = false
  let onHeld: () => void = () => {}
  const held = new Promise<void>(resolve => (onHeld = resolve))
  const release: (() => void)[] = []
  const url = await redisRelay(t, port, () => {
    let holding: Buffer[] | undefined
    return {
      toRedis: (chunk, forward) => {
        if (holding !== undefined) return void holding.push(chunk)
        if (!armed || !chunk.includes(lockKey) || chunk.includes('EXISTS')) return forward(chunk)
        armed = false
        holding = [chunk]
        release.push(() => {
          for (const c of holding as Buffer[]) forward(c)
          holding = undefined
        })
        onHeld()
      },
    }
  })
  return { url, arm: () => void (armed = true), held, release: () => release.splice(0).forEach(go => go()) }
}

/** `promise`, or a rejection naming `what` after 30 s: a deadline only a failure reaches. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`not within 30 s: ${what}`)), 30_000)))
  try {
    return await Promise.race([promise, deadline])
  } finally {
    clearTimeout(timer)
  }
}

t.test("a fill that lands between a machine's look and its lock is found there, not run again", needsRedis, async t => {
  const redis = await startRedis(t)
  const relay = await lockHoldingRelay(t, redis.port, 'test:lock:/between')
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered)
  // A deadline past anything the hold can take: a timed-out lock would run the handler too.
  const b = await machine(t, { ...redis, url: relay.url }, runs, numbered, { timeout: 60_000 })
  relay.arm()
  const fromB = get(b.base, '/between')
  await within(relay.held, 'B asked for the lock')
  t.equal(runs.count, 0, 'B found no entry, and its lock request is held')
  const fromA = await get(a.base, '/between')
  t.match(fromA, { xCache: 'MISS', body: 'response 1' }, 'A filled the entry meanwhile, and gave its lock back')
  relay.release()
  t.match(await fromB, { xCache: 'HIT', body: 'response 1' }, 'B took the free lock, and found the entry with it')
  t.equal(runs.count, 1, 'the handler ran once')
  const client = await raw(t, redis)
  t.equal(await client.exists('test:lock:/between'), 0, 'B gave the lock back: nothing waits on it')
})

t.test('concurrent misses that waited on a response that may not be stored run the handler themselves', needsRedis, async t => {
  const redis = await startRedis(t)
  const runs = { count: 0 }
  const g = gate(4, (_req, call) => text(200, `private ${call}`, { 'cache-control': 'private' }))
  const machines = [await machine(t, redis, runs, g.respond, {}, g.arrived), await machine(t, redis, runs, g.respond, {}, g.arrived)]
  const results = await Promise.all(Array.from({ length: 4 }, (_, i) => get((machines[i % 2] as Machine).base, '/mine')))
  t.same(
    results.map(r => r.xCache),
    ['BYPASS', 'BYPASS', 'BYPASS', 'BYPASS'],
    'every answer is a BYPASS',
  )
  t.equal(runs.count, 4, 'each request ran the handler')
  const client = await raw(t, redis)
  t.same(await client.keys('test:*'), [], 'no entry and no lock left in Redis')
})

t.test('a fill lock nobody releases is waited out for lockTtl, then the handler runs', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  await client.set('test:lock:/stuck', '1', { PX: 60_000 })
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered, { lockTtl: 200 })
  t.match(await get(a.base, '/stuck'), { xCache: 'MISS', body: 'response 1' }, 'answered after the wait, and stored')
  t.equal(await client.exists('test:lock:/stuck'), 0, 'the stale lock is gone with the fill')
})

t.test('in-process copies: up to localTtl ms without a round trip; 0 reads Redis every time', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  const runs = { count: 0 }
  const kept = await machine(t, redis, runs, numbered, { localTtl: 60_000 })
  const none = await machine(t, redis, runs, numbered, { localTtl: 0 })
  await get(kept.base, '/local')
  t.match(await get(none.base, '/local'), { xCache: 'HIT' }, 'the other machine reads the entry from Redis')
  await client.del('test:cache:/local')
  t.match(await get(kept.base, '/local'), { xCache: 'HIT', body: 'response 1' }, 'the machine that stored it still has its copy')
  t.match(await get(none.base, '/local'), { xCache: 'MISS', body: 'response 2' }, 'the machine without copies sees the entry gone')
})

t.test('responses the cache must not store, requests that may not use it, TTL 0: BYPASS, nothing in Redis', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, (req, call) =>
    req.url === '/cookie' ? text(200, 'c', { 'set-cookie': 'a=b' }) : text(200, `r ${call}`),
  )
  const off = await machine(t, redis, runs, numbered, { ttl: 0 })
  const big = await machine(t, redis, runs, () => text(200, 'x'.repeat(2000)), { maxBytes: 1000 })
  t.match(await get(a.base, '/cookie'), { xCache: 'BYPASS' }, 'Set-Cookie: BYPASS')
  t.match(await get(a.base, '/auth', { headers: { authorization: 'Basic eDp5' } }), { xCache: 'BYPASS' }, 'Authorization: BYPASS')
  t.match(await get(a.base, '/post', { method: 'POST' }), { xCache: 'BYPASS' }, 'POST: BYPASS')
  t.match(await get(off.base, '/off'), { xCache: 'BYPASS' }, 'TTL 0: BYPASS')
  t.match(await get(big.base, '/big'), { xCache: 'MISS' }, 'an entry over maxBytes is answered')
  t.same(await client.keys('test:*'), [], 'and none of them is in Redis')
})

t.test('HEAD is answered from an entry in Redis and stores nothing; no-cache fetches anew and stores', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered)
  const b = await machine(t, redis, runs, numbered)
  t.match(await get(a.base, '/h', { method: 'HEAD' }), { xCache: 'MISS' }, 'a HEAD miss runs the handler')
  t.equal(await client.exists('test:cache:/h'), 0, 'and stores nothing')
  await get(a.base, '/h')
  t.match(await get(b.base, '/h', { method: 'HEAD' }), { xCache: 'HIT' }, "a HEAD on the other machine finds the GET's entry in Redis")
  t.match(
    await get(b.base, '/h', { method: 'HEAD', headers: { 'cache-control': 'no-cache' } }),
    { xCache: 'MISS' },
    'a HEAD with no-cache runs the handler',
  )
  t.match(
    await get(b.base, '/h', { headers: { 'cache-control': 'no-cache' } }),
    { xCache: 'MISS', body: 'response 4' },
    'a GET with no-cache runs it and stores',
  )
  await client.del('test:cache:/h')
  t.match(await get(b.base, '/h'), { xCache: 'HIT', body: 'response 4' }, 'the refresh went into the local copy too')
})

t.test('bytes in Redis that are not an entry count as a miss and are replaced', needsRedis, async t => {
  const redis = await startRedis(t)
  const client = await raw(t, redis)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered, { localTtl: 0 })
  await client.set('test:cache:/junk', 'not an entry', { PX: 60_000 })
  t.match(await get(a.base, '/junk'), { xCache: 'MISS', body: 'response 1' }, 'the junk is a miss')
  t.match(await get(a.base, '/junk'), { xCache: 'HIT', body: 'response 1' }, 'and was replaced by a real entry')
})

t.test('encodeEntry and decodeEntry round-trip bytes; anything else decodes to undefined', async t => {
  const response = { status: 200, headers: { 'content-type': 'application/octet-stream' }, body: Buffer.from([0, 255, 10, 13]) }
  t.same(decodeEntry(encodeEntry(response)), response, 'a response comes back as it went in')
  const meta = (value: unknown): Buffer => {
    const json = Buffer.from(JSON.stringify(value))
    const length = Buffer.alloc(4)
    length.writeUInt32BE(json.length)
    return Buffer.concat([length, json])
  }
  const bad: Array<[string, Buffer]> = [
    ['too short for the length', Buffer.from([0, 1])],
    ['a length past the end', Buffer.from([0, 0, 0, 99, 123])],
    ['JSON that is not', Buffer.from([0, 0, 0, 1, 65])],
    ['no status', meta({ headers: {} })],
    ['headers not an object', meta({ status: 200, headers: 'x' })],
    ['headers null', meta({ status: 200, headers: null })],
    ['a header that is not a string', meta({ status: 200, headers: { a: 1 } })],
  ]
  for (const [what, value] of bad) t.equal(decodeEntry(value), undefined, what)
})

t.test('Redis killed: BYPASS with one warning line, answers go on; restarted: the cache is back', needsRedis, async t => {
  const redis = await startRedis(t)
  const runs = { count: 0 }
  const a = await machine(t, redis, runs, numbered, { localTtl: 0 })
  await get(a.base, '/k')
  await redis.kill()
  for (let i = 0; i < 3; i++) t.match(await get(a.base, `/k`), { status: 200, xCache: 'BYPASS' }, `request ${i + 1} while down: BYPASS`)
  t.match(await get(a.base, '/k', { method: 'HEAD' }), { status: 200, xCache: 'BYPASS' }, 'a HEAD while down: BYPASS')
  t.equal(a.lines.matching(/redis down/).length, 1, 'one warning line for the outage')
  await redis.restart()
  await a.lines.waitFor(/answering again/, 5000)
  t.match(await get(a.base, '/k'), { xCache: 'MISS' }, 'back: a MISS (the restarted Redis is empty)')
  t.match(await get(a.base, '/k'), { xCache: 'HIT' }, 'then a HIT')
})

t.test('Redis stopped (SIGSTOP): answers within 1 s, BYPASS; also when it stops while the handler runs', needsRedis, async t => {
  const redis = await startRedis(t)
  t.teardown(() => redis.resume())
  const runs = { count: 0 }
  const a = await machine(
    t,
    redis,
    runs,
    (req, call) => {
      if (req.url === '/stop') redis.pause()
      return text(200, `response ${call}`)
    },
    { timeout: 300 },
  )
  const started = performance.now()
  t.match(await get(a.base, '/stop'), { status: 200, xCache: 'BYPASS', body: 'response 1' }, 'the store timed out: BYPASS')
  t.match(await get(a.base, '/other'), { status: 200, xCache: 'BYPASS' }, 'the next request bypasses at once')
  t.ok(performance.now() - started < 1000, 'both answered within 1 s')
  redis.resume()
  await a.lines.waitFor(/answering again/, 5000)
  t.match(await get(a.base, '/other'), { xCache: 'MISS' }, 'recovered')
})
