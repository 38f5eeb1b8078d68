import t from 'tap'
import { FULL, NONE, choose, type Choosing, type Tries } from '../../src/select/choose.js'
import { RoundRobin } from '../../src/select/round-robin.js'
import type { Pool } from '../../src/upstreams/pool.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { pool, req } from '../fixtures/pools.js'

/** A request's tries, as an Exchange or a Tunnel holds them. */
function tries(pinnedId?: string, start = 0): Tries {
  return { req, tried: new Set(), pinnedId, start, upstream: undefined, retries: 0 }
}

const settings = (p: Pool, over: Partial<Choosing> = {}): Choosing => ({
  pool: p,
  policy: new RoundRobin(),
  retries: Infinity,
  retryTimeout: 0,
  ...over,
})
const host = (c: Upstream | string): string => (typeof c === 'string' ? c : c.host)

t.test('the pinned upstream first, while it is available and not tried; then the policy', async t => {
  const p = pool({}, {}, {})
  const [, b] = p.upstreams as Upstream[]
  const s = settings(p)
  const pinned = tries('b:1')
  t.equal(host(choose(s, pinned, true, 0)), 'b', 'the cookie names b: b, not round-robin’s a')
  t.equal(host(choose(s, pinned, true, 0)), 'a', 'b tried: the policy chooses')
  t.equal(host(choose(s, tries('z:9'), true, 0)), 'c', 'a cookie naming no upstream: the policy')
  ;(b as Upstream).setHealthy(false, 'test')
  t.equal(host(choose(s, tries('b:1'), true, 0)), 'a', 'b down: the policy')
})

t.test('a full pinned upstream: a request waits for it, an upgrade takes another', async t => {
  const p = pool({}, { maxConns: 1 })
  ;(p.upstreams[1] as Upstream).inFlight = 1
  t.equal(choose(settings(p), tries('b:1'), true, 0), FULL, 'canWait: FULL, to wait for its own upstream')
  t.equal(host(choose(settings(p), tries('b:1'), false, 0)), 'a', 'cannot wait: the policy chooses another')
})

t.test('full is not down: a tier all at max_conns is FULL, and keeps the backups out', async t => {
  const p = pool({ maxConns: 1 }, { maxConns: 1 }, { backup: true })
  for (const u of p.upstreams.slice(0, 2)) u.inFlight = 1
  t.equal(choose(settings(p), tries(), true, 0), FULL, 'a request: FULL')
  t.equal(choose(settings(p), tries(), false, 0), FULL, 'an upgrade: FULL too, for its 503')
  for (const u of p.upstreams.slice(0, 2)) u.setHealthy(false, 'test')
  t.equal(host(choose(settings(p), tries(), true, 0)), 'c', 'every primary down: the backup')
  ;(p.upstreams[2] as Upstream).setHealthy(false, 'test')
  t.equal(choose(settings(p), tries(), true, 0), NONE, 'all down: NONE')
})

t.test('one retry budget: --retries and --retry-timeout', async t => {
  const p = pool({}, {}, {})
  const one = tries()
  const s = settings(p, { retries: 1 })
  t.equal(host(choose(s, one, true, 0)), 'a', 'the first try')
  t.equal(host(choose(s, one, true, 0)), 'b', 'one retry')
  t.equal(choose(s, one, true, 0), NONE, 'no second retry')
  const late = tries(undefined, 100)
  const timed = settings(p, { retryTimeout: 50 })
  t.equal(host(choose(timed, late, true, 149)), 'c', 'within the retry timeout')
  t.equal(choose(timed, late, true, 150), NONE, 'none once it has passed')
  const all = tries()
  for (let i = 0; i < 3; i++) choose(settings(p), all, true, 0)
  t.equal(choose(settings(p), all, true, 0), NONE, 'without a cap: each upstream once')
})

t.test('a try after the first is counted, on the upstream that failed', async t => {
  const p = pool({}, {})
  const [a, b] = p.upstreams as Upstream[]
  const r = tries()
  choose(settings(p), r, true, 0)
  t.same([r.retries, r.upstream, a?.stats.retries], [0, a, 0], 'the first try counts no retry')
  choose(settings(p), r, true, 0)
  t.same([r.retries, r.upstream, a?.stats.retries, b?.stats.retries], [1, b, 1, 0], 'the second: one retry, on a')
  t.same([...r.tried], [a, b], 'both tried')
})
