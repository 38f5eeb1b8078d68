import t from 'tap'
import { RoundRobin } from '../../src/select/round-robin.js'
import { Pool } from '../../src/upstreams/pool.js'
import { Upstream } from '../../src/upstreams/upstream.js'
import { picks, pool } from '../fixtures/pools.js'

const defaults = { maxFails: 1, failTimeout: 10_000 }

t.test('backups are used only when no primary is available; full primaries keep them out', async t => {
  const p = pool({}, { backup: true }, { maxConns: 1 })
  const [a, , c] = p.upstreams as Upstream[]
  const rr = new RoundRobin()
  t.same(picks(rr, p, 4), ['a', 'c', 'a', 'c'], 'primaries only')
  ;(c as Upstream).inFlight = 1
  a?.recordFailure('ECONNREFUSED', performance.now())
  t.same(picks(rr, p, 2), ['-', '-'], 'a down and c full: nothing, the backup stays out')
  t.equal(p.tier(new Set(), performance.now()).length, 1, 'the tier is the full primary: the request waits for it')
  ;(c as Upstream).inFlight = 0
  c?.setHealthy(false, 'test')
  t.same(picks(rr, p, 2), ['b', 'b'], 'every primary down: the backup serves')
  t.same(picks(rr, p, 1, new Set([p.upstreams[1] as Upstream])), ['-'], 'the backup tried too: nothing')
})

t.test('a pool of one never marks its upstream down; a larger pool does', async t => {
  const lone = new Upstream({ host: 'a', port: 1 }, defaults)
  lone.recordFailure('ECONNREFUSED', 0)
  t.ok(new Pool([lone]).isAvailable(lone, 1), 'lone upstream stays available')
  const other = new Upstream({ host: 'b', port: 1 }, defaults)
  t.notOk(new Pool([lone, other]).isAvailable(lone, 1), 'in a pool of two it is skipped')
})
