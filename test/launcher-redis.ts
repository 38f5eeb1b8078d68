// `npm start -- --redis` (scripts/start.mjs) with real processes: a private redis-server, the
// backends' sessions and jobs on it, one switchyard-worker, all supervised and stopped in order;
// or an existing Redis given by URL, whose password never shows. Waits are for log lines and
// answers, with deadlines only a failure reaches.
import { existsSync } from 'node:fs'
import t from 'tap'
import { needsRedis, startRedis } from '../packages/backend/test/fixtures/redis-server.js'
import { alive, childrenOf, freePort, isFree, readProc, run, untilGone, WAIT_MS, type Run } from './fixtures/launcher.js'

async function stackEnv(): Promise<{ a: number; b: number; balancer: number; admin: number; redis: number; env: Record<string, string> }> {
  const [a, b, balancer, admin, redis] = [await freePort(), await freePort(), await freePort(), await freePort(), await freePort()] as [
    number,
    number,
    number,
    number,
    number,
  ]
  return {
    a,
    b,
    balancer,
    admin,
    redis,
    env: {
      SWITCHYARD_BACKEND_PORTS: `${a},${b}`,
      SWITCHYARD_PORT: String(balancer),
      SWITCHYARD_ADMIN_PORT: String(admin),
      SWITCHYARD_REDIS_PORT: String(redis),
      SWITCHYARD_SKIP_BUILD: '1',
    },
  }
}

/** Waits until both backends and the worker are connected to Redis, and the balancer listens. */
async function ready(launcher: Run, a: number, b: number): Promise<void> {
  await launcher.line(new RegExp(`^\\[backend-${a}\\] backend-${a}: redis connected to `))
  await launcher.line(new RegExp(`^\\[backend-${b}\\] backend-${b}: redis connected to `))
  await launcher.line(/^\[worker-1\] worker-1 ready: jobs from /)
  await launcher.line(/^\[balancer\] switchyard listening on /)
}

/** GET /session three times through the balancer with one cookie jar and no sticky cookie. */
async function visits(port: number): Promise<{ id: string; visits: number }[]> {
  let cookie = ''
  const out: { id: string; visits: number }[] = []
  for (let i = 0; i < 3; i++) {
    const res = await fetch(`http://127.0.0.1:${port}/session`, { headers: cookie === '' ? {} : { cookie } })
    cookie = res.headers.get('set-cookie')?.split(';')[0] ?? cookie
    out.push((await res.json()) as { id: string; visits: number })
  }
  return out
}

/** Posts a job through the balancer and polls it, from whichever backend answers, until it is done. */
async function runJob(port: number): Promise<{ state: string }> {
  const res = await fetch(`http://127.0.0.1:${port}/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: '{"type":"report","ms":100}',
  })
  const location = res.headers.get('location') as string
  const deadline = Date.now() + WAIT_MS
  for (;;) {
    const job = (await (await fetch(`http://127.0.0.1:${port}${location}`)).json()) as { state: string }
    if (job.state === 'completed' || job.state === 'failed' || Date.now() > deadline) return job
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

t.test('npm start -- --redis: a private redis-server, shared sessions and jobs, stopped last', needsRedis, async t => {
  const ports = await stackEnv()
  const launcher = run(t, ['--redis'], ports.env)
  const dir = /in (\/\S+)$/.exec(
    await launcher.line(/^\[launcher\] --redis: a private redis-server on 127\.0\.0\.1:\d+, in /),
  )?.[1] as string
  await launcher.line(/^\[redis\] .*Ready to accept connections/)
  await ready(launcher, ports.a, ports.b)
  const seen = await visits(ports.balancer)
  t.same(
    seen.map(v => v.visits),
    [1, 2, 3],
    'visits 1, 2, 3 through round-robin, with no sticky cookie',
  )
  t.equal(new Set(seen.map(v => v.id)).size, 2, 'counted by both backends')
  t.equal((await runJob(ports.balancer)).state, 'completed', 'a job posted through the balancer was run by the worker')
  for (const child of childrenOf(launcher.proc.pid as number)) {
    t.notOk(
      child.argv.some(arg => arg.startsWith('redis://')),
      `${child.argv[1]}: no Redis URL on its command line`,
    )
  }

  launcher.proc.kill('SIGTERM')
  const { code } = await launcher.exited()
  t.equal(code, 0, 'a stop exits 0')
  const redisStop = launcher.lines.findIndex(l => /^\[redis\] .*Received SIGTERM/.test(l))
  const lastOther = launcher.lines.findLastIndex(l => /^\[(backend-\d+|worker-1|balancer)\] /.test(l))
  t.ok(redisStop > lastOther, 'redis-server was stopped after every other child had finished')
  t.ok(await isFree(ports.redis), 'its port is free again')
  t.notOk(existsSync(dir), 'its folder is removed')
})

t.test('--redis: redis-server is restarted like a backend, and the launcher dying takes it along', needsRedis, async t => {
  const ports = await stackEnv()
  const launcher = run(t, ['--redis'], ports.env)
  await ready(launcher, ports.a, ports.b)
  const wrapper = childrenOf(launcher.proc.pid as number).find(c => c.argv.some(arg => arg.endsWith('redis-child.mjs'))) as { pid: number }
  const redisPid = (await new Promise<number>(resolve => {
    const check = () => {
      const found = childrenOf(wrapper.pid).find(c => c.argv[0]?.includes('redis-server'))
      if (found === undefined) setImmediate(check)
      else resolve(found.pid)
    }
    check()
  })) as number
  const from = launcher.lines.length
  process.kill(redisPid, 'SIGKILL')
  await launcher.line(/^\[launcher\] redis exited with code 1; restarting in 100 ms \(restart 1\)$/, from)
  await launcher.line(/^\[redis\] .*Ready to accept connections/, from)
  // Both backends lost their connection; each says when it has Redis again.
  for (const port of [ports.a, ports.b]) {
    await launcher.line(new RegExp(`^\\[backend-${port}\\] backend-${port}: redis (answering again after|connected to) `), from)
  }
  t.same(
    (await visits(ports.balancer)).map(v => v.visits),
    [1, 2, 3],
    'sessions work again on the restarted redis-server',
  )

  const pids = [launcher.proc.pid as number, ...childrenOf(launcher.proc.pid as number).map(c => c.pid)]
  const newRedis = childrenOf(
    childrenOf(launcher.proc.pid as number).find(c => c.argv.some(arg => arg.endsWith('redis-child.mjs')))?.pid as number,
  )
  launcher.proc.kill('SIGKILL')
  t.ok(
    await untilGone([...pids.slice(1), ...newRedis.map(c => c.pid)]),
    'every child, redis-server included, stopped when the launcher was killed',
  )
  t.ok(await isFree(ports.redis), 'no orphan holds the Redis port')
})

t.test('--redis URL: an existing Redis, its password never shown, no redis-server of our own', needsRedis, async t => {
  const password = 'hunter2-launcher-secret'
  const redis = await startRedis(t, { password })
  const ports = await stackEnv()
  const launcher = run(t, ['--redis', redis.url], ports.env)
  t.match(
    await launcher.line(/^\[launcher\] --redis: using /),
    /redis:\/\/:\*\*\*@127\.0\.0\.1:\d+/,
    'the URL is printed with the password masked',
  )
  await ready(launcher, ports.a, ports.b)
  t.same(
    (await visits(ports.balancer)).map(v => v.visits),
    [1, 2, 3],
    'sessions are shared through it',
  )
  const kids = childrenOf(launcher.proc.pid as number)
  t.notOk(
    kids.some(c => c.argv.some(arg => arg.endsWith('redis-child.mjs'))),
    'no redis-server was started',
  )
  for (const child of kids) {
    t.notOk(readProc(`/proc/${child.pid}/cmdline`)?.includes(password), `${child.argv[1]}: the password is not on its command line`)
  }
  launcher.proc.kill('SIGTERM')
  await launcher.exited()
  t.notOk(
    launcher.lines.some(l => l.includes(password)),
    'no line of output holds the password',
  )
  t.ok(alive(redis.pid()), 'the Redis that was given is left running')
})

t.test('--redis: bad input exits 1 with one line', async t => {
  const ports = await stackEnv()
  const bad = run(t, ['--redis', 'http://user:s3cret@host:6379'], ports.env)
  t.equal((await bad.exited()).code, 1, 'a URL that is not redis:// exits 1')
  t.same(bad.lines, ['[launcher] --redis: "http://user:***@host:6379" is not a redis:// or rediss:// URL'], 'one line, the password masked')
  const garbled = run(t, ['--redis', 'not a url'], ports.env)
  t.equal((await garbled.exited()).code, 1, 'a value that is no URL at all exits 1')
  t.same(garbled.lines, ['[launcher] --redis: "not a url" is not a redis:// or rediss:// URL'], 'the same one line')
  // A PATH with nothing on it: no redis-server to start (the launcher runs node by its full path).
  const missing = run(t, ['--redis'], { ...ports.env, PATH: t.testdir() })
  t.equal((await missing.exited()).code, 1, 'no redis-server: exit 1')
  t.same(
    missing.lines,
    [
      '[launcher] --redis: redis-server is not installed: apt-get install redis-server, or pass a URL: npm start -- --redis redis://host:6379',
    ],
    'one line saying what to do',
  )
})

t.test('--redis URL with no password is shown as given; a Redis that is not there does not stop the stack', async t => {
  const ports = await stackEnv()
  // ports.redis is free: nothing answers there.
  const launcher = run(t, ['--redis', `redis://127.0.0.1:${ports.redis}/2`], ports.env)
  t.equal(
    await launcher.line(/^\[launcher\] --redis: using /),
    `[launcher] --redis: using redis://127.0.0.1:${ports.redis}/2`,
    'the URL as given: there is nothing to mask',
  )
  await launcher.line(/^\[balancer\] switchyard listening on /)
  launcher.proc.kill('SIGTERM')
  const { code } = await launcher.exited()
  t.equal(code, 0, 'the stack came up without its Redis and stops cleanly', { lines: launcher.lines })
})
