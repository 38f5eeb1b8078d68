// What a reload changes in the upstreams: kept with their state, added, retired while they drain, and brought back.
import t from 'tap'
import type { UpstreamSpec } from '../../src/options.js'
import { reconcile } from '../../src/upstreams/reconcile.js'
import { Upstream } from '../../src/upstreams/upstream.js'

const defaults = { maxFails: 1, failTimeout: 10_000 }
const spec = (port: number, over: Partial<UpstreamSpec> = {}): UpstreamSpec => ({ host: '127.0.0.1', port, ...over })

t.test('an upstream kept by address keeps its state, with the new settings', async t => {
  const a = new Upstream(spec(1), defaults)
  a.inFlight = 2
  a.stats.retries = 7
  const next = reconcile([a], [], [spec(1, { weight: 5 }), spec(2)], { maxFails: 3, failTimeout: 1000 })
  t.equal(next.upstreams[0], a, 'the same upstream')
  t.same([a.weight, a.maxFails, a.failTimeout, a.inFlight, a.stats.retries], [5, 3, 1000, 2, 7], 'new settings, the same counts')
  t.equal(next.upstreams[1]?.id, '127.0.0.1:2', 'a new address is a new upstream')
  t.same(next.retired, [], 'nothing removed')
})

t.test('one removed with requests in flight drains; one removed idle is gone; a drained one added back is the same', async t => {
  const busy = new Upstream(spec(1), defaults)
  const idle = new Upstream(spec(2), defaults)
  busy.inFlight = 1
  const first = reconcile([busy, idle], [], [spec(3)], defaults)
  t.same(first.retired, [busy], 'the busy one drains; the idle one is dropped')
  const back = reconcile(first.upstreams, first.retired, [spec(1), spec(3)], defaults)
  t.equal(back.upstreams[0], busy, 'added back while draining: the same upstream, state and all')
  t.same(back.retired, [], 'and no longer retired')
  t.equal(back.upstreams[1], first.upstreams[0], 'the other kept')
})
