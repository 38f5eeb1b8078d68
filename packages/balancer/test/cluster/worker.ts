// The worker's side of the cluster, in this process: the messages it sends and how it applies
// what it receives. (The primary is tested with real workers in cli-workers.ts.)
import { EventEmitter } from 'node:events'
import t from 'tap'
import type { HealthNews } from '../../src/cluster/messages.js'
import { joinCluster } from '../../src/cluster/worker.js'
import type { ProcessCounts } from '../../src/observe/status.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { closedPort, fetchText, startBalancer, startUpstream } from '../fixtures/servers.js'

t.test("a worker passes its health flips on, applies others', and answers for its counts", async t => {
  const dead = await closedPort()
  const good = await startUpstream(t, 'good')
  const { balancer, port } = await startBalancer(t, [dead, good.spec], { failTimeout: 30_000 })
  const sent: unknown[] = []
  const channel = Object.assign(new EventEmitter(), { send: (m: unknown) => sent.push(m) })
  const joined = joinCluster(balancer, channel)
  t.same(sent, [{ switchyard: 'hello' }], 'it says hello first, to hear the health others have')
  let welcomed = false
  void joined.then(() => (welcomed = true))
  channel.emit('message', { switchyard: 'welcome' })
  await joined
  t.ok(welcomed, 'the welcome lets it listen')

  t.equal((await fetchText(port)).status, 200, 'refused by the dead upstream, served by the good one')
  t.match(
    sent[1],
    { switchyard: 'health', id: dead, up: false, source: 'passive', ms: 30_000 } satisfies Partial<HealthNews>,
    'the passive flip goes to the primary',
  )

  const [d, g] = balancer.pool.upstreams as [Upstream, Upstream]
  const news = (over: Partial<HealthNews>): HealthNews => ({
    switchyard: 'health',
    id: g.id,
    up: false,
    source: 'passive',
    reason: 'seen elsewhere',
    ms: 5000,
    ...over,
  })
  channel.emit('message', news({}))
  t.notOk(balancer.pool.isAvailable(g, performance.now()), "another worker's passive failure takes the upstream out here")
  t.equal(g.lastChange?.reason, 'seen elsewhere', 'with its reason')
  channel.emit('message', news({ reason: 'seen by a third worker' }))
  t.equal(g.lastChange?.reason, 'seen elsewhere', 'news of a failure while down is no new change')
  t.notOk(balancer.pool.isAvailable(g, performance.now()), 'it only extends the down time')
  channel.emit('message', news({ up: true, reason: 'a request succeeded elsewhere' }))
  t.ok(balancer.pool.isAvailable(g, performance.now()), 'and its success brings it back')
  channel.emit('message', news({ source: 'active', reason: 'check failed in the primary' }))
  t.equal(g.healthy, false, "the primary's active verdict applies")
  channel.emit('message', news({ source: 'active', up: true, reason: 'check passed' }))
  t.equal(g.healthy, true)
  channel.emit('message', news({ id: '10.9.9.9:1' }))
  t.pass('news of an upstream this worker does not have (a reload in between) is ignored')
  channel.emit('message', { type: 'prom-client:getMetricsReq', requestId: 1 })
  channel.emit('message', null)
  t.equal(sent.length, 2, "prom-client's messages and anything else are not ours: no reply")

  channel.emit('message', { switchyard: 'counts?', seq: 7 })
  const reply = sent[2] as { switchyard: string; seq: number; counts: ProcessCounts }
  t.equal(reply.switchyard, 'counts')
  t.equal(reply.seq, 7, 'the reply names the request')
  t.equal(reply.counts.processes[0]?.pid, process.pid)
  t.equal(reply.counts.processes[0]?.requests, 1, 'with what this process served')
  t.ok(d.stats.failures.connect === 1, 'the failure was counted here')
})
