import t, { type Test } from 'tap'
import { QueueFullError } from '../../src/errors.js'
import { MemoryJobQueue } from '../../src/jobs/memory-queue.js'
import { report } from '../../src/jobs/report.js'
import type { JobType, JobView } from '../../src/jobs/types.js'
import { until } from '../fixtures/log.js'

/** A job type whose runs wait until the test lets them go, and then do what it says. */
function held() {
  const waiting: Array<(outcome: 'ok' | 'fail') => void> = []
  const type: JobType = {
    parse: () => ({}),
    run: ({ signal }) =>
      new Promise((resolve, reject) => {
        signal.addEventListener('abort', () => reject(new Error('aborted')))
        waiting.push(outcome => (outcome === 'ok' ? resolve('done') : reject(new Error('told to fail'))))
      }),
  }
  return { type, waiting }
}

function queue(t: Test, types: Record<string, JobType>, options: { concurrency?: number; maxPending?: number } = {}): MemoryJobQueue {
  const q = new MemoryJobQueue({
    types,
    concurrency: options.concurrency ?? 2,
    backoff: 20,
    worker: () => 'backend-test',
    maxPending: options.maxPending,
  })
  t.teardown(() => q.close())
  return q
}

const done = (job: JobView | undefined): boolean => job?.state === 'completed' || job?.state === 'failed'

t.test('a report job runs to completion: progress, result, attempts, times and log', async t => {
  const q = queue(t, { report })
  const posted = await q.add('report', { ms: 20 })
  t.match(
    posted,
    { type: 'report', data: { ms: 20 }, state: 'active', progress: 0, result: null, attempts: 1, maxAttempts: 4, startedAt: String },
    'a free worker starts it at once',
  )
  t.match(posted.id, /^[0-9a-f-]{36}$/, 'a random UUID')
  const job = (await until(() => q.get(posted.id), done, 10_000, 'completion')) as JobView
  t.match(
    job,
    { state: 'completed', progress: 100, result: { sleptMs: 20 }, failedReason: null, attempts: 1, finishedAt: String },
    'completed',
  )
  t.same(job.log, ['run 1 started on backend-test', 'run 1 finished on backend-test'], 'one run, logged')
  t.ok(
    Date.parse(job.createdAt) <= Date.parse(job.startedAt as string) &&
      Date.parse(job.startedAt as string) <= Date.parse(job.finishedAt as string),
    'created ≤ started ≤ finished',
  )
  t.equal(await q.get('00000000-0000-4000-8000-000000000000'), undefined, 'an unknown id: undefined')
})

t.test('concurrency bounds the jobs running at once; the next waits its turn', async t => {
  const h = held()
  const q = queue(t, { held: h.type }, { concurrency: 1 })
  const a = await q.add('held', {})
  const b = await q.add('held', {})
  t.equal(a.state, 'active', 'the first runs')
  t.equal(b.state, 'waiting', 'the second waits')
  h.waiting.shift()?.('ok')
  await until(
    () => q.get(b.id),
    job => job?.state === 'active',
    10_000,
    'the second running',
  )
  t.equal((await q.get(a.id))?.state, 'completed', 'once the first completed')
})

t.test('a failing job is retried 3 times with exponential backoff, then fails with its reason', async t => {
  const starts: number[] = []
  const failing: JobType = {
    parse: () => ({}),
    run: async () => {
      starts.push(performance.now())
      throw new Error(`broke on run ${starts.length}`)
    },
  }
  const q = queue(t, { failing })
  const { id } = await q.add('failing', {})
  const job = (await until(() => q.get(id), done, 10_000, 'failure')) as JobView
  t.match(job, { state: 'failed', failedReason: 'broke on run 4', attempts: 4, result: null }, 'failed after 4 runs, with the last reason')
  t.equal(job.log.filter(line => line.startsWith('run ')).length, 8, 'each run logged its start and end')
  const gaps = starts.slice(1).map((at, i) => at - (starts[i] as number))
  gaps.forEach((gap, i) => t.ok(gap >= 20 * 2 ** i - 2, `retry ${i + 1} waited at least ${20 * 2 ** i} ms (${gap.toFixed(0)})`))
})

t.test('a job that fails once and then succeeds completes on its second run', async t => {
  let runs = 0
  const flaky: JobType = {
    parse: () => ({}),
    run: async () => {
      if (++runs === 1) throw new Error('first run fails')
      return 'ok'
    },
  }
  const q = queue(t, { flaky })
  const { id } = await q.add('flaky', {})
  t.match(
    await until(() => q.get(id), done),
    { state: 'completed', attempts: 2, failedReason: 'first run fails', result: 'ok' },
    'completed, the earlier failure still told',
  )
})

t.test('unfinished jobs are bounded: past maxPending, add rejects with QueueFullError', async t => {
  const h = held()
  const q = queue(t, { held: h.type }, { maxPending: 1 })
  await q.add('held', {})
  await t.rejects(q.add('held', {}), QueueFullError, 'the second is refused')
})

t.test('close() aborts the runs in progress and drops the retries: nothing outlives it', async t => {
  const h = held()
  let fails = 0
  const failing: JobType = {
    parse: () => ({}),
    run: async () => {
      fails++
      throw new Error('fails')
    },
  }
  const q = new MemoryJobQueue({ types: { held: h.type, failing }, concurrency: 2, backoff: 60_000, worker: () => 'w' })
  const running = await q.add('held', {})
  const retrying = await q.add('failing', {})
  await until(
    () => q.get(retrying.id),
    job => job?.attempts === 1 && job.state === 'waiting',
    10_000,
    'a retry waiting',
  )
  q.close()
  t.equal(fails, 1, 'the retry 60 s away was dropped (the test would wait for it otherwise)')
  t.equal((await q.get(running.id))?.state, 'active', 'the aborted run is lost as it stood, not retried')
  t.same(await q.add('held', {}).then(job => job.state), 'waiting', 'a job added after close is never started')
})
