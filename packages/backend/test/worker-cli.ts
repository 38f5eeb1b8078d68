import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { RedisJobQueue } from '../src/jobs/redis-queue.js'
import type { JobView } from '../src/jobs/types.js'
import { RedisLink } from '../src/redis/link.js'
import { parseRedisUrl } from '../src/redis/url.js'
import { until } from './fixtures/log.js'
import { needsRedis, startRedis, type RedisServer } from './fixtures/redis-server.js'
import { run, WORKER_CLI } from './fixtures/spawn.js'

// Each spawn loads the TypeScript sources through tap's loader (a second or two): the
// scenarios run side by side.
t.jobs = 3

/** How long a CLI gets to start: loading TypeScript, node-redis and BullMQ takes seconds on a busy machine. */
const STARTUP_MS = 60_000

/** A queue on the test's Redis, to post jobs and read them, and a raw client. */
async function queue(t: Test, redis: RedisServer) {
  const link = new RedisLink({ target: parseRedisUrl(redis.url, 'url'), timeout: 2000 })
  const q = new RedisJobQueue({ link, prefix: 'switchyard:', backoff: 1000 })
  t.teardown(async () => {
    await q.close()
    await link.close()
  })
  return { q, client: await link.client() }
}

t.test('bad input: exit 1 with one line naming the value, no stack trace', async t => {
  const cases: Array<[string[], Record<string, string | undefined>, RegExp]> = [
    [
      [],
      { REDIS_URL: undefined },
      /^switchyard-worker: --redis \(or REDIS_URL\) is required: without Redis, jobs run inside switchyard-backend\n$/,
    ],
    [['--redis', 'redis://h', '--shutdown-timeout', 'soon'], {}, /^switchyard-worker: --shutdown-timeout: "soon" is not a whole number/],
    [['--redis', 'redis://h', '--id', ''], {}, /^switchyard-worker: --id: "" is not an id/],
    [
      [],
      { REDIS_URL: 'redis://:hunter2@h/cache' },
      /^switchyard-worker: REDIS_URL: "redis:\/\/:\*\*\*@h\/cache" has a path that is not a database number/,
    ],
    [['--port', '1'], {}, /^switchyard-worker: unknown flag --port \(switchyard-worker --help lists them\)\n$/],
    [['--redis-prefx', 'a'], {}, /^switchyard-worker: unknown flag --redis-prefx; did you mean --redis-prefix\? /],
    [[], { REDIS_URL: '' }, /^switchyard-worker: --redis \(or REDIS_URL\) is required/],
    // Not an unknown flag: yargs' own words, on one line.
    [['--redis'], {}, /^switchyard-worker: Not enough arguments following: redis\n$/],
  ]
  await Promise.all(
    cases.map(async ([args, env, line]) => {
      const r = run(t, WORKER_CLI, args, { REDIS_URL: '', ...env })
      const { code } = await r.exited
      t.equal(code, 1, `${args.join(' ')}: exit 1`)
      t.match(r.err(), line, `${args.join(' ')}: ${r.err().trim()}`)
      t.equal(r.err().split('\n').length, 2, `${args.join(' ')}: one line`)
      t.notMatch(r.err(), /hunter2/, 'no password')
    }),
  )
})

t.test('SIGKILL a worker mid-job, start another: the job completes, once, on the second', needsRedis, async t => {
  const redis = await startRedis(t)
  const { q, client } = await queue(t, redis)
  // BullMQ's locks are timed: a lock lapses when its worker's event loop stalls for longer than
  // half of it, and a second stall fails the job. worker-a's lock is short so that its death is
  // seen soon; worker-b's is longer so that a busy machine cannot make it lose the job it runs.
  const a = run(t, WORKER_CLI, ['--redis', redis.url, '--id', 'worker-a', '--lock-duration', '2'])
  await a.out.waitFor(/^worker-a ready: jobs from redis:\/\/127\.0\.0\.1:\d+, 2 at once$/, STARTUP_MS)
  const { id } = await q.add('report', { ms: 1500 })
  await until(
    () => q.get(id),
    job => job?.state === 'active' && job.progress >= 10,
    10_000,
    'the job under way on worker-a',
  )
  a.child.kill('SIGKILL')
  await a.exited
  // No --id: it names itself worker-<pid>.
  const b = run(t, WORKER_CLI, ['--redis', redis.url, '--lock-duration', '3'])
  const named = `worker-${b.child.pid}`
  const job = (await until(
    () => q.get(id),
    j => j?.state === 'completed' || j?.state === 'failed',
    STARTUP_MS,
    'completion',
  )) as JobView
  t.match(job, { state: 'completed', result: { sleptMs: 1500 }, attempts: 2 }, 'completed, on its second run')
  // The marker: the job's own log in Redis, one line per run started and per run finished.
  const marker = await client.lRange(`switchyard:bull:jobs:${id}:logs`, 0, -1)
  t.same(
    marker,
    ['run 1 started on worker-a', `run 2 started on ${named}`, `run 2 finished on ${named}`],
    'two runs started, one finished: it ran to completion once',
  )
  await b.out.waitFor(/completed/)
  // Stopped with SIGTERM, not left to the teardown's SIGKILL, so its coverage is written.
  b.child.kill('SIGTERM')
  t.equal((await b.exited).code, 0, 'the second worker stops cleanly')
  t.equal(
    b.out.matching(new RegExp(`^${named}: job ${id} report completed \\(attempt 2\\)$`)).length,
    1,
    'the second worker completed it once',
  )
})

t.test('SIGTERM: the job in progress finishes, then exit 0; REDIS_URL keeps the password out of ps', needsRedis, async t => {
  const password = 'pw-on-the-env-4b1d'
  const redis = await startRedis(t, { password })
  const { q } = await queue(t, redis)
  const w = run(t, WORKER_CLI, ['--id', 'worker-t', '--quiet', '--shutdown-timeout', '20'], { REDIS_URL: redis.url })
  await w.out.waitFor(/^worker-t ready: jobs from redis:\/\/:\*\*\*@127\.0\.0\.1:\d+, 2 at once$/, STARTUP_MS)
  t.notMatch(readFileSync(`/proc/${w.child.pid}/cmdline`, 'utf8'), new RegExp(password), 'the command line holds no password')
  const { id } = await q.add('report', { ms: 400 })
  await until(
    () => q.get(id),
    job => job?.state === 'active',
    10_000,
    'the job running',
  )
  w.child.kill('SIGTERM')
  const { code } = await w.exited
  t.equal(code, 0, 'exit 0')
  t.match(await q.get(id), { state: 'completed' }, 'the job completed first')
  t.ok(w.out.all.includes('worker-t: SIGTERM, finishing jobs in progress'), 'it said so')
  t.equal(w.out.matching(/job .* completed/).length, 0, '--quiet: no line per job')
  t.notMatch(w.out.all.join('\n') + w.err(), new RegExp(password), 'no password in any line')
})
