import t from 'tap'
import { LeastRequests } from '../../src/select/least-requests.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { picks, pool } from '../fixtures/pools.js'

t.test('least-requests: fewest in flight per weight, ties by weight, then round-robin', async t => {
  const p = pool({}, {}, {})
  const [a, b, c] = p.upstreams as Upstream[]
  const lr = new LeastRequests()
  t.same(picks(lr, p, 6), ['a', 'b', 'c', 'a', 'b', 'c'], 'an idle pool rotates')
  ;(a as Upstream).inFlight = 2
  ;(b as Upstream).inFlight = 1
  ;(c as Upstream).inFlight = 3
  t.same(picks(lr, p, 2), ['b', 'b'], 'fewest in flight wins')
  const w = pool({ weight: 1 }, { weight: 3 })
  t.same(picks(lr, w, 3), ['b', 'b', 'b'], 'a tie goes to the heavier upstream')
  ;(w.upstreams[1] as Upstream).inFlight = 3
  ;(w.upstreams[0] as Upstream).inFlight = 2
  t.same(picks(lr, w, 1), ['b'], '3 in flight at weight 3 is lighter than 2 at weight 1')
})
