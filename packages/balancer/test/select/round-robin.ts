import t from 'tap'
import type { UpstreamSpec } from '../../src/options.js'
import { RoundRobin } from '../../src/select/round-robin.js'
import { Pool } from '../../src/upstreams/pool.js'
import { Upstream } from '../../src/upstreams/upstream.js'
import { defaults, picks, pool } from '../fixtures/pools.js'

t.test('round-robin: exact sequences, as nginx smooth weighted round-robin', async t => {
  const table: [string, Partial<UpstreamSpec>[], string][] = [
    ['one upstream', [{}], 'aaa'],
    ['two alternate strictly', [{}, {}], 'ababab'],
    ['three in declared order', [{}, {}, {}], 'abcabc'],
    ['weights 5,1,1 are smooth, not bursty', [{ weight: 5 }, { weight: 1 }, { weight: 1 }], 'aabacaa' + 'aabacaa'],
    ['weights 3,1', [{ weight: 3 }, { weight: 1 }], 'aaba' + 'aaba'],
    ['weights 2,3', [{ weight: 2 }, { weight: 3 }], 'babab' + 'babab'],
  ]
  for (const [name, specs, want] of table) t.equal(picks(new RoundRobin(), pool(...specs), want.length).join(''), want, name)
})

t.test('slow start ramps the weight from 10% to 100%', async t => {
  const u = new Upstream({ host: 'a', port: 1, weight: 10, slowStart: 1000 }, defaults)
  t.equal(u.weightAt(0), 10, 'never down: full weight')
  u.recordFailure('x', 0)
  u.recordSuccess(5000)
  t.equal(u.weightAt(5000), 1, 'just back: 10%')
  t.equal(u.weightAt(5500), 5.5, 'half way: 55%')
  t.equal(u.weightAt(6000), 10, 'after slow_start: full')
  const p = new Pool([u, new Upstream({ host: 'b', port: 1, weight: 10 }, defaults)])
  u.upSince = performance.now()
  const early = picks(new RoundRobin(), p, 11).filter(h => h === 'a').length
  t.ok(early <= 2, `right after coming back, a gets ${early} of 11 picks at 10% weight`)
})
