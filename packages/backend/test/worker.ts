import t from 'tap'
import { ConfigError } from '../src/errors.js'
import { RedisJobQueue } from '../src/jobs/redis-queue.js'
import type { JobView } from '../src/jobs/types.js'
import { RedisLink } from '../src/redis/link.js'
import { parseRedisUrl } from '../src/redis/url.js'
import { createWorker } from '../src/worker.js'
import { Lines, until } from './fixtures/log.js'
import { needsRedis, startRedis } from './fixtures/redis-server.js'

t.test('createWorker runs the queued jobs; it names itself worker-<pid> and logs nothing unless asked', needsRedis, async t => {
  const redis = await startRedis(t)
  const link = new RedisLink({ target: parseRedisUrl(redis.url, 'url'), timeout: 2000 })
  const queue = new RedisJobQueue({ link, prefix: 'switchyard:', backoff: 1000 })
  t.teardown(async () => {
    await queue.close()
    await link.close()
  })
  const worker = createWorker({ redis: redis.url })
  t.equal(worker.id, `worker-${process.pid}`, 'the default id')
  t.equal(worker.shown, redis.url, 'the URL it shows')
  await worker.ready()
  const { id } = await queue.add('report', { ms: 0 })
  const job = (await until(
    () => queue.get(id),
    j => j?.state === 'completed',
    10_000,
    'completion',
  )) as JobView
  t.same(job.log, [`run 1 started on worker-${process.pid}`, `run 1 finished on worker-${process.pid}`], 'run by it')
  await worker.close()
})

t.test('close() with Redis gone does not wait for it', needsRedis, async t => {
  const redis = await startRedis(t)
  const lines = new Lines()
  const worker = createWorker({ redis: redis.url, id: 'w', log: lines.push })
  await worker.ready()
  await redis.kill()
  await lines.waitFor(/redis down/)
  const closed = worker.close().then(() => 'closed')
  const late = new Promise(resolve => setTimeout(() => resolve('still waiting'), 5000).unref())
  t.equal(await Promise.race([closed, late]), 'closed', 'closed without Redis')
})

t.test('createWorker checks its options', async t => {
  t.throws(() => createWorker({ redis: 'http://h' }), ConfigError, 'a URL that is not redis: is a ConfigError')
  t.throws(
    () => createWorker({ redis: 'redis://h', jobsConcurrency: 0 }),
    { message: /^jobsConcurrency: 0 is not a whole number/ },
    'so is 0 jobs at once',
  )
})
