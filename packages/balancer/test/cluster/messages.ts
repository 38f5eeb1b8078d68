// The cluster's messages: which are ours on a channel prom-client shares, what news carries, and how a group applies it.
import t from 'tap'
import { applyNews, isOurs, newsOf, type HealthNews } from '../../src/cluster/messages.js'
import { UpstreamGroup } from '../../src/upstreams/group.js'

t.test('ours carry `switchyard`; news names the upstream, the kind of health and how long it stays out', async t => {
  t.ok(isOurs({ switchyard: 'hello' }), 'a hello is ours')
  t.notOk(isOurs({ type: 'prom-client:getMetricsReq', requestId: 1 }), "prom-client's are not")
  t.notOk(isOurs(null), 'nor null')
  t.notOk(isOurs('health'), 'nor a string')
  const group = new UpstreamGroup()
  group.configure({
    upstreams: [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2 },
    ],
    failTimeout: 30_000,
  })
  const [a] = group.pool.upstreams
  const change = a?.recordFailure('ECONNREFUSED')
  t.same(
    change && newsOf(change),
    {
      switchyard: 'health',
      id: '127.0.0.1:1',
      up: false,
      source: 'passive',
      reason: '1 failure(s) in 30s, last: ECONNREFUSED; skipped for 30s',
      ms: 30_000,
    },
    'passive news: out for fail_timeout',
  )
  t.equal(change && newsOf(change, 1234).ms, 1234, 'or for what is left of it, for a worker that joins later')
})

t.test('applyNews(): active news sets the checks’ verdict, passive news the down time; an unknown upstream is ignored', async t => {
  const group = new UpstreamGroup()
  group.configure({
    upstreams: [
      { host: '127.0.0.1', port: 1 },
      { host: '127.0.0.1', port: 2 },
    ],
  })
  const [a] = group.pool.upstreams
  const news = (over: Partial<HealthNews>): HealthNews => ({
    switchyard: 'health',
    id: '127.0.0.1:1',
    up: false,
    source: 'active',
    reason: 'r',
    ms: 5000,
    ...over,
  })
  applyNews(group, news({}))
  t.equal(a?.healthy, false, 'active: down')
  applyNews(group, news({ up: true }))
  t.equal(a?.healthy, true, 'active: up')
  applyNews(group, news({ source: 'passive' }))
  t.ok((a?.passiveDownFor(performance.now()) ?? 0) > 4000, 'passive: out for the time given')
  applyNews(group, news({ source: 'passive', up: true }))
  t.equal(a?.passiveDownFor(performance.now()), 0, 'passive: back')
  applyNews(group, news({ id: '10.9.9.9:1' }))
  t.pass('an upstream this process does not have is ignored')
})
