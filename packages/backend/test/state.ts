// A backend with --redis, whole: its routes while Redis answers, stops (SIGSTOP), dies and comes back.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import type { BackendOptions } from '../src/config.js'
import type { JobView } from '../src/jobs/types.js'
import { createBackend } from '../src/server.js'
import { Lines, until } from './fixtures/log.js'
import { needsRedis, startRedis } from './fixtures/redis-server.js'

/** A backend on `redis`, its lines in `lines`, closed (callback and all) at teardown. */
async function start(t: Test, options: BackendOptions, lines = new Lines()): Promise<{ base: string; lines: Lines }> {
  const backend = createBackend({ id: 'backend-r', log: lines.push, ...options })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  t.teardown(() => new Promise<void>(resolve => backend.close(() => resolve())))
  return { base: `http://127.0.0.1:${(backend.address() as AddressInfo).port}`, lines }
}

async function get(base: string, path: string, init: RequestInit = {}) {
  const started = performance.now()
  const res = await fetch(`${base}${path}`, init)
  const text = await res.text()
  return { status: res.status, xCache: res.headers.get('x-cache'), text, ms: performance.now() - started }
}

const postReport = (base: string, ms: number) =>
  get(base, '/jobs', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ type: 'report', ms }) })

t.test('with Redis up: /healthz says so; a worker in the backend (--worker) runs its jobs', needsRedis, async t => {
  const redis = await startRedis(t)
  const { base, lines } = await start(t, { redis: redis.url, worker: true })
  await lines.waitFor(/redis connected/)
  // Its uptime is whatever it is by now (a loaded machine takes seconds to connect): a whole number of seconds.
  const health = JSON.parse((await get(base, '/healthz')).text) as { uptimeSeconds: number }
  t.same({ ...health, uptimeSeconds: 0 }, { status: 'ok', redis: 'up', id: 'backend-r', uptimeSeconds: 0 }, 'ok, redis up')
  t.ok(Number.isInteger(health.uptimeSeconds) && health.uptimeSeconds >= 0, `uptime in whole seconds (${health.uptimeSeconds})`)
  const posted = JSON.parse((await postReport(base, 20)).text) as JobView
  const job = await until(
    async () => JSON.parse((await get(base, `/jobs/${posted.id}`)).text) as JobView,
    j => j.state === 'completed',
    10_000,
    'completion',
  )
  t.same(job.log, ['run 1 started on backend-r', 'run 1 finished on backend-r'], 'run by the backend itself')
  t.match(await lines.waitFor(/completed/), /^backend-r: job .+ report completed \(attempt 1\)$/, 'and logged')
})

t.test(
  'Redis stopped (SIGSTOP): every route answers within 1 s; cache BYPASS, /session and /jobs 503, /healthz degraded; SIGCONT: back',
  needsRedis,
  async t => {
    const redis = await startRedis(t)
    t.teardown(() => redis.resume())
    const { base, lines } = await start(t, { redis: redis.url })
    // Until the client is connected the cache bypasses Redis, as it does while Redis is down.
    await lines.waitFor(/redis connected/)
    t.match(await get(base, '/slow?ms=0'), { xCache: 'MISS' }, 'a MISS while Redis answers')
    redis.pause()
    const answers = [
      await get(base, '/slow?ms=1'),
      await get(base, '/session'),
      await postReport(base, 0),
      await get(base, '/jobs/00000000-0000-4000-8000-000000000000'),
      await get(base, '/healthz'),
      await get(base, '/'),
    ]
    answers.forEach((a, i) => t.ok(a.ms < 1000, `answer ${i + 1} within 1 s (${a.ms.toFixed(0)} ms)`))
    const [slow, session, posted, job, health, hello] = answers
    t.match(slow, { status: 200, xCache: 'BYPASS' }, 'the cache bypassed')
    t.same(
      [session?.status, session?.text],
      [503, 'Service Unavailable: the session store (Redis) is not answering; try again shortly'],
      '/session: 503, one line',
    )
    t.same(
      [posted?.status, posted?.text],
      [503, 'Service Unavailable: the job queue (Redis) is not answering; try again shortly'],
      'POST /jobs: 503, one line',
    )
    t.equal(job?.status, 503, 'GET /jobs/<id>: 503')
    t.match(JSON.parse(health?.text as string), { status: 'degraded', redis: 'down' }, '/healthz: degraded')
    t.equal(health?.status, 200, 'with 200, so the balancer keeps the backend for the routes that need no Redis')
    t.match(hello, { status: 200, text: 'Hello, World! from backend-r', xCache: 'BYPASS' }, 'GET / answers')
    t.same(
      lines.matching(/redis down/),
      ['backend-r: redis down (no answer within 500 ms); the cache is bypassed, /session and /jobs answer 503'],
      'one warning line',
    )
    redis.resume()
    const resumed = performance.now()
    await lines.waitFor(/answering again/, 5000)
    t.ok(performance.now() - resumed < 5000, 'recovered within 5 s of SIGCONT')
    t.match(JSON.parse((await get(base, '/healthz')).text), { status: 'ok', redis: 'up' }, '/healthz: ok again')
    t.equal((await get(base, '/session')).status, 200, '/session answers again')
  },
)

t.test('Redis killed: /healthz degraded; restarted: everything back by itself within 5 s', needsRedis, async t => {
  const redis = await startRedis(t)
  const { base, lines } = await start(t, { redis: redis.url })
  await lines.waitFor(/redis connected/)
  await redis.kill()
  await lines.waitFor(/redis down/)
  t.match(JSON.parse((await get(base, '/healthz')).text), { status: 'degraded', redis: 'down' }, '/healthz: degraded')
  t.equal((await get(base, '/session')).status, 503, '/session: 503')
  await redis.restart()
  const restarted = performance.now()
  await lines.waitFor(/answering again/, 5000)
  t.ok(performance.now() - restarted < 5000, 'back within 5 s')
  t.equal((await get(base, '/session')).status, 200, '/session: 200')
  const again = await postReport(base, 0)
  t.equal(again.status, 202, `POST /jobs: 202 (${again.text}; ${JSON.stringify(lines.all)})`)
  t.equal(lines.matching(/redis down/).length, 1, 'one warning line for the outage')
})

t.test('a backend running a worker closes without waiting for a Redis that is gone', needsRedis, async t => {
  const redis = await startRedis(t)
  const lines = new Lines()
  const backend = createBackend({ redis: redis.url, worker: true, log: lines.push })
  backend.listen(0, '127.0.0.1')
  await once(backend, 'listening')
  await lines.waitFor(/redis connected/)
  await redis.kill()
  await lines.waitFor(/redis down/)
  const closed = new Promise(resolve => backend.close(() => resolve('closed')))
  const late = new Promise(resolve => setTimeout(() => resolve('still waiting'), 5000).unref())
  t.equal(await Promise.race([closed, late]), 'closed', 'closed, worker and connections, without Redis')
})

t.test('sessions: two backends on one Redis count one session', needsRedis, async t => {
  const redis = await startRedis(t)
  const a = await start(t, { id: 'a', redis: redis.url, sessionTtl: 120 })
  const b = await start(t, { id: 'b', redis: redis.url, sessionTtl: 120 })
  const first = await fetch(`${a.base}/session`)
  const cookie = (first.headers.get('set-cookie') as string).split(';')[0] as string
  t.match(await first.json(), { id: 'a', visits: 1 }, 'a: visit 1')
  t.match(await (await fetch(`${b.base}/session`, { headers: { cookie } })).json(), { id: 'b', visits: 2 }, 'b: visit 2')
  const head = await fetch(`${b.base}/session`, { method: 'HEAD', headers: { cookie } })
  t.equal(head.status, 200, 'HEAD /session')
  t.match(await (await fetch(`${a.base}/session`, { headers: { cookie } })).json(), { id: 'a', visits: 3 }, 'a: visit 3')
})
