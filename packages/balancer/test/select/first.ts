import t from 'tap'
import { First } from '../../src/select/first.js'
import { picks, pool } from '../fixtures/pools.js'

t.test('first: the first available in declared order', async t => {
  const p = pool({}, {}, {})
  t.same(picks(new First(), p, 3), ['a', 'a', 'a'], 'always a')
  p.upstreams[0]?.setHealthy(false, 'test')
  t.same(picks(new First(), p, 2), ['b', 'b'], 'a down: b')
})
