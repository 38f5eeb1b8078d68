import t from 'tap'
import type { UpstreamSpec } from '../../src/options.js'
import { RandomTwo } from '../../src/select/random-two.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { picks, pool } from '../fixtures/pools.js'

/** mulberry32: a seeded uniform source, so the random policy's test is repeatable. */
function seeded(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('random-two: ratios over 10,000 picks within ±2%, and it prefers the less loaded', async t => {
  const table: [string, Partial<UpstreamSpec>[], number[]][] = [
    ['equal weights, idle', [{}, {}, {}, {}], [0.25, 0.25, 0.25, 0.25]],
    ['two upstreams', [{}, {}], [0.5, 0.5]],
  ]
  for (const [name, specs, ratios] of table) {
    const p = pool(...specs)
    const counts = new Map<string, number>()
    for (const h of picks(new RandomTwo(seeded(42)), p, 10_000)) counts.set(h, (counts.get(h) ?? 0) + 1)
    ratios.forEach((r, i) => {
      const host = String.fromCharCode(97 + i)
      const share = (counts.get(host) ?? 0) / 10_000
      t.ok(Math.abs(share - r) <= 0.02, `${name}: ${host} got ${(share * 100).toFixed(1)}% (want ${r * 100}% ±2%)`)
    })
  }
  const p = pool({}, {})
  ;(p.upstreams[0] as Upstream).inFlight = 5
  t.same(new Set(picks(new RandomTwo(seeded(1)), p, 50)), new Set(['b']), 'of two, always the one with fewer in flight')
  t.same(picks(new RandomTwo(), pool({}), 2), ['a', 'a'], 'one candidate: that one, with the default random source')
})
