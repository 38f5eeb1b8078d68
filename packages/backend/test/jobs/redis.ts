import t, { type Test } from 'tap'
import { RedisUnavailableError } from '../../src/errors.js'
import { RedisJobQueue } from '../../src/jobs/redis-queue.js'
import { RedisJobWorker } from '../../src/jobs/redis-worker.js'
import { report } from '../../src/jobs/report.js'
import type { JobType, JobView } from '../../src/jobs/types.js'
import { RedisLink } from '../../src/redis/link.js'
import { parseRedisUrl } from '../../src/redis/url.js'
import { Lines, until } from '../fixtures/log.js'
import { needsRedis, startRedis, type RedisServer } from '../fixtures/redis-server.js'

function link(t: Test, redis: RedisServer): RedisLink {
  const l = new RedisLink({ target: parseRedisUrl(redis.url, 'url'), timeout: 2000 })
  t.teardown(() => l.close())
  return l
}

/** A queue on its own connection, as a backend has it. */
function queue(t: Test, redis: RedisServer, backoff = 20): RedisJobQueue {
  const q = new RedisJobQueue({ link: link(t, redis), prefix: 'test:', backoff })
  t.teardown(() => q.close())
  return q
}

/** A worker on its own connection, as `switchyard-worker` has it; closed before its link. */
async function worker(t: Test, redis: RedisServer, types: Record<string, JobType>, lines = new Lines()): Promise<RedisJobWorker> {
  const l = new RedisLink({ target: parseRedisUrl(redis.url, 'url'), timeout: 2000 })
  const w = new RedisJobWorker({ link: l, prefix: 'test:', types, concurrency: 2, lockDuration: 30, id: () => 'worker-t', log: lines.push })
  t.teardown(async () => {
    await w.close(false)
    await l.close()
  })
  await w.ready()
  return w
}

const finished = (job: JobView | undefined): boolean => job?.state === 'completed' || job?.state === 'failed'

t.test('a job posted through one queue, run by a worker, is read back through another', needsRedis, async t => {
  const redis = await startRedis(t)
  const a = queue(t, redis)
  const b = queue(t, redis)
  const lines = new Lines()
  await worker(t, redis, { report }, lines)
  const posted = await a.add('report', { ms: 40 })
  t.match(
    posted,
    {
      type: 'report',
      data: { ms: 40 },
      state: 'waiting',
      progress: 0,
      result: null,
      failedReason: null,
      attempts: 0,
      maxAttempts: 4,
      startedAt: null,
      finishedAt: null,
      log: [],
    },
    'posted: waiting',
  )
  t.match(posted.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'a random UUID, not a counter')
  const job = (await until(() => b.get(posted.id), finished, 10_000, 'completion')) as JobView
  t.match(
    job,
    { state: 'completed', progress: 100, result: { sleptMs: 40 }, failedReason: null, attempts: 1, startedAt: String, finishedAt: String },
    'completed',
  )
  t.same(job.log, ['run 1 started on worker-t', 'run 1 finished on worker-t'], 'its log, in Redis')
  t.match(
    await lines.waitFor(/completed/),
    new RegExp(`^worker-t: job ${posted.id} report completed \\(attempt 1\\)$`),
    'the worker logged it',
  )
  t.equal(await b.get('00000000-0000-4000-8000-000000000000'), undefined, 'an unknown id: undefined')
})

t.test('a failing job is retried 3 times with exponential backoff by BullMQ, then fails with its reason', needsRedis, async t => {
  const redis = await startRedis(t)
  const q = queue(t, redis, 50)
  const starts: number[] = []
  const failing: JobType = {
    parse: () => ({}),
    run: async () => {
      starts.push(performance.now())
      throw new Error(`broke on run ${starts.length}`)
    },
  }
  const lines = new Lines()
  await worker(t, redis, { failing }, lines)
  const { id } = await q.add('failing', {})
  const job = (await until(() => q.get(id), finished, 10_000, 'failure')) as JobView
  t.match(job, { state: 'failed', failedReason: 'broke on run 4', attempts: 4, result: null }, 'failed after 4 runs, with the last reason')
  t.equal(job.log.length, 8, 'every run logged its start and its end')
  const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number))
  gaps.forEach((gap, i) => t.ok(gap >= 50 * 2 ** i - 5, `retry ${i + 1} waited at least ${50 * 2 ** i} ms (${gap.toFixed(0)})`))
  t.equal(lines.matching(/failed \(attempt \d of 4\): broke on run \d$/).length, 4, 'the worker logged each failure')
})

t.test('a job of a type the worker does not know fails at once, without retries', needsRedis, async t => {
  const redis = await startRedis(t)
  const q = queue(t, redis)
  await worker(t, redis, { report })
  const { id } = await q.add('newer-type', {})
  const job = (await until(() => q.get(id), finished, 10_000, 'failure')) as JobView
  t.match(job, { state: 'failed', attempts: 1, failedReason: 'worker-t knows no job type "newer-type"' }, 'failed once, saying why')
})

t.test('close() lets the job in progress finish', needsRedis, async t => {
  const redis = await startRedis(t)
  const q = queue(t, redis)
  const w = await worker(t, redis, { report })
  const { id } = await q.add('report', { ms: 300 })
  await until(
    () => q.get(id),
    job => job?.state === 'active',
    10_000,
    'the job running',
  )
  await w.close(false)
  t.match(await q.get(id), { state: 'completed' }, 'completed before close() resolved')
})

t.test('Redis down: add and get reject with RedisUnavailableError', needsRedis, async t => {
  const redis = await startRedis(t)
  const q = queue(t, redis)
  const { id } = await q.add('report', { ms: 0 })
  await redis.kill()
  await t.rejects(q.add('report', { ms: 0 }), RedisUnavailableError, 'add')
  await t.rejects(q.get(id), RedisUnavailableError, 'get')
})

t.test("BullMQ's start-up check failing: the queue and the worker are made again until it passes", needsRedis, async t => {
  const redis = await startRedis(t)
  const admin = await link(t, redis).client()
  // A user that may not run INFO: BullMQ's version check fails, as when Redis dies in the middle of it.
  await admin.sendCommand(['ACL', 'SETUSER', 'app', 'on', '>app-pw', '~*', '&*', '+@all', '-info'])
  const url = `redis://app:app-pw@127.0.0.1:${redis.port}`
  const appLink = new RedisLink({ target: parseRedisUrl(url, 'url'), timeout: 2000, probeInterval: 50 })
  const q = new RedisJobQueue({ link: appLink, prefix: 'test:', backoff: 20 })
  t.teardown(async () => {
    await q.close()
    await appLink.close()
  })
  await t.rejects(q.add('report', { ms: 0 }), RedisUnavailableError, 'a queue whose check failed answers unavailable')
  const wLines = new Lines()
  const wLink = new RedisLink({ target: parseRedisUrl(url, 'url'), timeout: 2000, log: wLines.push })
  const w = new RedisJobWorker({
    link: wLink,
    prefix: 'test:',
    types: { report },
    concurrency: 1,
    lockDuration: 30,
    id: () => 'worker-late',
  })
  t.teardown(async () => {
    await w.close(false)
    await wLink.close()
  })
  t.match(await wLines.waitFor(/redis down/), /NOPERM|permission/i, "the worker's first start failed on the check")
  await admin.sendCommand(['ACL', 'SETUSER', 'app', '+info'])
  await w.ready()
  t.pass('the worker started once the check could pass')
  const { id } = await until(
    () =>
      q.add('report', { ms: 0 }).then(
        job => job,
        () => undefined,
      ),
    job => job !== undefined,
    10_000,
    'a queue made again',
  ).then(job => job as JobView)
  t.match(await until(() => q.get(id), finished, 10_000, 'completion'), { state: 'completed' }, 'and jobs run')
})

t.test('a worker closed before it started never starts', needsRedis, async t => {
  const redis = await startRedis(t)
  const l = link(t, redis)
  const w = new RedisJobWorker({ link: l, prefix: 'test:', types: { report }, concurrency: 1, lockDuration: 30, id: () => 'w' })
  await w.close(false)
  const client = await l.client()
  await new Promise(resolve => setImmediate(resolve))
  t.equal(((await client.sendCommand(['CLIENT', 'LIST'])) as string).trim().split('\n').length, 1, 'no connection but the link its own')
})
