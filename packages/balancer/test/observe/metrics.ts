// The Prometheus metrics of one balancer: names and labels are a contract, and the histogram follows reloads.
import t from 'tap'
import { createMetrics } from '../../src/observe/metrics.js'
import { parseExposition, valueOf } from '../fixtures/prometheus.js'
import { fetchText, startBalancer, startUpstream } from '../fixtures/servers.js'

const specOf = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })

t.test('every metric docs/observability.md names, and an upstream a reload adds gets its latency histogram', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { balancer, port } = await startBalancer(t, [a.spec])
  const registry = createMetrics(balancer)
  await fetchText(port)
  balancer.reload({ upstreams: [specOf(a.spec), specOf(b.spec)] })
  await fetchText(port)
  await fetchText(port)
  const exp = parseExposition(await registry.metrics())
  for (const name of [
    'switchyard_requests_total',
    'switchyard_upstream_failures_total',
    'switchyard_retries_total',
    'switchyard_upstream_bytes_total',
    'switchyard_upstream_in_flight',
    'switchyard_upstream_up',
    'switchyard_connections_open',
    'switchyard_upstream_response_seconds',
  ]) {
    t.ok(exp.types.has(name), `${name} is exposed`)
  }
  t.equal(valueOf(exp, 'switchyard_requests_total', { upstream: a.spec, method: 'GET', code_class: '2xx' }), 2, 'a answered two')
  t.equal(
    valueOf(exp, 'switchyard_requests_total', { upstream: b.spec, method: 'GET', code_class: '2xx' }),
    1,
    'b, added by the reload, one',
  )
  t.equal(valueOf(exp, 'switchyard_upstream_response_seconds_count', { upstream: b.spec }), 1, "b's response time is in the histogram")
  t.equal(valueOf(exp, 'switchyard_upstream_up', { upstream: b.spec }), 1, 'and it is up')
})
