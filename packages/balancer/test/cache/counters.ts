import t from 'tap'
import { CacheCounter, hitRatio, mergeCacheCounts, type CacheCounts } from '../../src/cache/counters.js'

t.test('counts by status, the last minute, the hit ratio, and the sum over workers', async t => {
  const c = new CacheCounter()
  const now = Date.UTC(2026, 11, 1, 8, 0, 30)
  c.record('HIT', now - 2000)
  c.record('HIT', now - 2000)
  c.record('MISS', now - 1500)
  c.record('BYPASS', now - 1000)
  c.record('STALE', now - 120_000)
  c.record('HIT', now)
  t.same(c.total, { HIT: 3, MISS: 1, EXPIRED: 0, STALE: 1, UPDATING: 0, REVALIDATED: 0, BYPASS: 1 }, 'all since start')
  const minute = c.lastMinute(now)
  t.same(
    [minute.HIT, minute.MISS, minute.STALE, minute.BYPASS],
    [2, 1, 0, 1],
    'the last whole minute: not the second under way, not two minutes ago',
  )
  t.equal(hitRatio(minute), 2 / 3, 'hits over lookups, BYPASS left out')
  t.equal(hitRatio({ ...minute, HIT: 0, MISS: 0, BYPASS: 4 }), null, 'no lookups: null')
  const part: CacheCounts = { requests: c.total, lastMinute: minute, bytes: 10, maxBytes: 100, entries: 2, evictions: 1 }
  const sum = mergeCacheCounts([part, null, part]) as CacheCounts
  t.same(
    [sum.requests.HIT, sum.lastMinute.HIT, sum.bytes, sum.maxBytes, sum.entries, sum.evictions],
    [6, 4, 20, 200, 4, 2],
    'workers add up',
  )
  t.equal(mergeCacheCounts([null]), null, 'no cache anywhere: null')
})
