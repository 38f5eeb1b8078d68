// Scaling out: two backends and a worker on one real redis-server, behind the real balancer
// (round-robin, no sticky cookie). The cache, the sessions and the jobs are shared.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { createBackend, createWorker, type Backend } from '../packages/backend/src/index.js'
import { until } from '../packages/backend/test/fixtures/log.js'
import { needsRedis, startRedis, type RedisServer } from '../packages/backend/test/fixtures/redis-server.js'
import { createBalancer } from '../packages/balancer/src/index.js'

const portOf = (server: { address(): unknown }): number => (server.address() as AddressInfo).port

/** A backend on `redis`, closed (Redis connections too) at teardown. */
async function backend(t: Test, id: string, redis: RedisServer): Promise<Backend> {
  const server = createBackend({ id, redis: redis.url, redisTimeout: 2000 })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>(resolve => server.close(() => resolve()))
  })
  return server
}

/** Round-robin over `backends`, no sticky cookie: the balancer's defaults. */
async function balancer(t: Test, backends: Backend[]): Promise<string> {
  const lb = createBalancer({ upstreams: backends.map(b => ({ host: '127.0.0.1', port: portOf(b) })), log: () => {} })
  const { port } = await lb.listen(0, '127.0.0.1')
  t.teardown(() => lb.close())
  return `http://127.0.0.1:${port}`
}

async function stack(t: Test) {
  const redis = await startRedis(t)
  const a = await backend(t, 'backend-a', redis)
  const b = await backend(t, 'backend-b', redis)
  return { redis, a, b, url: await balancer(t, [a, b]) }
}

t.test('the cache is shared: a MISS on one backend is a HIT on the other', needsRedis, async t => {
  const { url } = await stack(t)
  const seen: string[] = []
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${url}/slow?ms=20`)
    await res.text()
    seen.push(`${res.headers.get('x-served-by')} ${res.headers.get('x-cache')}`)
  }
  t.same(
    seen,
    ['backend-a MISS', 'backend-b HIT', 'backend-a HIT', 'backend-b HIT'],
    'one MISS in all, where each backend used to miss once',
  )
})

t.test('ten concurrent misses spread over two backends run the handler once in all', needsRedis, async t => {
  const { url, a, b } = await stack(t)
  let firstAnswer = Infinity
  const answers = Array.from({ length: 10 }, () =>
    fetch(`${url}/slow?ms=3000`).then(async res => {
      firstAnswer = Math.min(firstAnswer, performance.now())
      return `${res.headers.get('x-cache')} ${await res.text()}`
    }),
  )
  // Proof that they were concurrent: all ten reached the backends before any was answered.
  await until(
    async () => a.stats.toJSON()['GET /slow'] ?? 0,
    n => n === 5,
    10_000,
    'five requests on a',
  )
  await until(
    async () => b.stats.toJSON()['GET /slow'] ?? 0,
    n => n === 5,
    10_000,
    'five requests on b',
  )
  const arrived = performance.now()
  const results = await Promise.all(answers)
  t.ok(arrived < firstAnswer, 'all ten arrived before the first answer')
  t.equal(a.handlerRuns + b.handlerRuns, 1, 'the handler ran once, on one of the two backends')
  t.equal(results.filter(r => r.startsWith('MISS')).length, 1, 'one MISS')
  t.equal(results.filter(r => r.startsWith('HIT')).length, 9, 'nine HITs')
  t.equal(new Set(results.map(r => r.slice(r.indexOf(' ')))).size, 1, 'all ten got the same answer')
})

t.test('sessions: visits 1, 2, 3 across both backends under round-robin, no sticky cookie', needsRedis, async t => {
  const { url } = await stack(t)
  const first = await fetch(`${url}/session`)
  const cookie = (first.headers.get('set-cookie') as string).split(';')[0] as string
  const visits = [(await first.json()) as { id: string; visits: number; session: string }]
  for (let i = 0; i < 2; i++) visits.push((await (await fetch(`${url}/session`, { headers: { cookie } })).json()) as (typeof visits)[0])
  t.same(
    visits.map(v => [v.id, v.visits]),
    [
      ['backend-a', 1],
      ['backend-b', 2],
      ['backend-a', 3],
    ],
    'the count goes on whichever backend answers',
  )
  t.equal(new Set(visits.map(v => v.session)).size, 1, 'one session tag')
  const fresh = await fetch(`${url}/session`, { headers: { cookie: 'sid=AAAAAAAAAAAAAAAAAAAAAA' } })
  t.match(await fresh.json(), { visits: 1 }, 'a sid no backend knows starts a fresh session')
  t.match(fresh.headers.get('set-cookie'), /^sid=(?!AAAAAAAAAAAAAAAAAAAAAA)[A-Za-z0-9_-]{22};/, 'with a new id')
})

t.test('jobs: posted on one backend, run by a worker, watched to completed from the other', needsRedis, async t => {
  const { redis, a, b } = await stack(t)
  const worker = createWorker({ redis: redis.url, id: 'worker-1' })
  t.teardown(() => worker.close())
  await worker.ready()
  const posted = await fetch(`http://127.0.0.1:${portOf(a)}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"type":"report","ms":200}',
  })
  t.equal(posted.status, 202, 'backend-a accepted it')
  const location = posted.headers.get('location') as string
  const fromB = async () =>
    (await fetch(`http://127.0.0.1:${portOf(b)}${location}`)).json() as Promise<{ state: string; progress: number; log: string[] }>
  const states = new Set<string>()
  const job = await until(
    async () => {
      const j = await fromB()
      states.add(j.state)
      return j
    },
    j => j.state === 'completed',
    10_000,
    'completion seen from backend-b',
  )
  t.match(
    job,
    { progress: 100, result: { sleptMs: 200 }, log: ['run 1 started on worker-1', 'run 1 finished on worker-1'] },
    'backend-b sees it completed by the worker',
  )
  t.ok(states.has('active') || states.has('waiting'), `it was seen before it completed too (${[...states].join(', ')})`)
})
