import t from 'tap'
import { createPolicy } from '../../src/select/policies.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { picks, pool } from '../fixtures/pools.js'

t.test('every policy skips down, admin-down, full and tried upstreams', async t => {
  for (const name of ['round-robin', 'least-requests', 'random-two', 'first', 'hash'] as const) {
    const p = pool({}, {}, {}, { down: true }, { maxConns: 1 })
    const [a, b, c, , e] = p.upstreams as Upstream[]
    ;(e as Upstream).inFlight = 1
    b?.recordFailure('ECONNREFUSED', performance.now())
    const policy = createPolicy(name)
    t.equal(policy.name, name, `createPolicy('${name}')`)
    const seen = new Set(picks(policy, p, 30))
    t.ok(seen.size > 0 && [...seen].every(h => h === 'a' || h === 'c'), `${name}: only a or c are chosen (${[...seen]})`)
    t.same(picks(policy, p, 3, new Set([a as Upstream])), ['c', 'c', 'c'], `${name}: a tried, c is left`)
    t.same(picks(policy, p, 1, new Set([a as Upstream, c as Upstream])), ['-'], `${name}: nothing left`)
  }
})
