// A Redis password in the URL, through the real CLIs: it reaches no log line, no error
// message, no /healthz, and, given in REDIS_URL, no command line.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { until } from './fixtures/log.js'
import { needsRedis, startRedis } from './fixtures/redis-server.js'
import { BACKEND_CLI, run, WORKER_CLI } from './fixtures/spawn.js'

const STARTUP_MS = 60_000
const PASSWORD = 'pw-9Zq-never-logged'
const WRONG = 'wrong-8Yx-never-logged'

t.test('grep every captured line of a backend, a worker and a refused backend: no password', needsRedis, async t => {
  const redis = await startRedis(t, { password: PASSWORD })
  const env = { REDIS_URL: redis.url }
  const backend = run(t, BACKEND_CLI, ['--port', '0', '--id', 'backend-p'], env)
  const worker = run(t, WORKER_CLI, ['--id', 'worker-p'], env)
  // The wrong password on the command line: the user's choice, but still never in a line.
  const refused = run(t, BACKEND_CLI, ['--port', '0', '--id', 'backend-x', '--redis', `redis://:${WRONG}@127.0.0.1:${redis.port}`], {
    REDIS_URL: '',
  })
  const bad = run(t, BACKEND_CLI, ['--redis', `redis://:${PASSWORD}@127.0.0.1:${redis.port}/not-a-db`], { REDIS_URL: '' })
  const base = /(http:\/\/127\.0\.0\.1:\d+)$/.exec(await backend.out.waitFor(/^backend-p listening on /, STARTUP_MS))?.[1] as string
  await backend.out.waitFor(/^backend-p: redis connected to redis:\/\/:\*\*\*@127\.0\.0\.1:\d+$/, STARTUP_MS)
  await worker.out.waitFor(/^worker-p ready: jobs from redis:\/\/:\*\*\*@/, STARTUP_MS)
  t.match(
    await refused.out.waitFor(/^backend-x: redis down/, STARTUP_MS),
    /^backend-x: redis down \((WRONGPASS|NOAUTH)[^)]*\); /,
    'the refused backend says why',
  )
  t.equal((await bad.exited).code, 1, 'a bad URL: exit 1')

  const health = await (await fetch(`${base}/healthz`)).text()
  t.match(JSON.parse(health), { status: 'ok', redis: 'up' }, '/healthz: up')
  const posted = (await (
    await fetch(`${base}/jobs`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"type":"report","ms":10}' })
  ).json()) as { id: string }
  await until(
    async () => (await (await fetch(`${base}/jobs/${posted.id}`)).json()) as { state: string },
    job => job.state === 'completed',
    STARTUP_MS,
    'the job done',
  )
  await redis.kill()
  await backend.out.waitFor(/redis down/, STARTUP_MS)
  await worker.out.waitFor(/redis down/, STARTUP_MS)
  const downHealth = await (await fetch(`${base}/healthz`)).text()
  await redis.restart()
  await backend.out.waitFor(/redis answering again/, STARTUP_MS)

  const everything = [backend, worker, refused, bad]
    .flatMap(r => [...r.out.all, r.err()])
    .concat(health, downHealth)
    .join('\n')
  t.match(everything, /redis:\/\/:\*\*\*@127\.0\.0\.1/, 'the URL is shown, masked')
  t.notMatch(everything, new RegExp(PASSWORD), 'the password is in no line, no error, no /healthz')
  t.notMatch(everything, new RegExp(WRONG), 'nor is the wrong one')
  for (const r of [backend, worker]) {
    t.notMatch(
      readFileSync(`/proc/${r.child.pid}/cmdline`, 'utf8'),
      new RegExp(PASSWORD),
      'REDIS_URL keeps it off the command line `ps` shows',
    )
  }
})
