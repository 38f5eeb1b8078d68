// The status snapshot from counts taken at another moment than the pool it describes, as a
// cluster's primary builds it: the workers' counts may predate a reload the primary applied.
import t from 'tap'
import { buildStatus, processCounts } from '../../src/observe/status.js'
import { fetchText, startBalancer, startUpstream } from '../fixtures/servers.js'

t.test('counts taken before a reload that added an upstream: the new one shows zero, nothing throws', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { balancer, port } = await startBalancer(t, [a.spec])
  t.equal((await fetchText(port)).status, 200, 'a serves one request')
  // What a worker answered just before the primary read its configuration again.
  const counts = processCounts(balancer)
  const spec = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })
  balancer.reload({ upstreams: [spec(a.spec), spec(b.spec)] })
  const s = buildStatus(balancer, counts)
  t.same(
    s.upstreams.map(u => [u.id, u.state, u.requests, u.inFlight, u.latencyMs]),
    [
      [a.spec, 'up', 1, 0, s.upstreams[0]?.latencyMs],
      [b.spec, 'up', 0, 0, null],
    ],
    'the added upstream is listed with zero counts',
  )
  t.equal(s.requests.total, 1, 'the totals are the counts given')
})
