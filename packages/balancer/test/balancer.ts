import { once } from 'node:events'
import { request } from 'node:http'
import t from 'tap'
import { createBalancer } from '../src/index.js'
import { fetchText, startBalancer, startUpstream } from './fixtures/servers.js'

t.test('sequential GETs alternate strictly between two upstreams', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [a.spec, b.spec])
  const order: string[] = []
  for (let i = 0; i < 12; i++) order.push((await fetchText(port)).headers['x-served-by'] as string)
  t.same(order, ['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b', 'a', 'b'], 'round-robin alternates a, b')
})

t.test(
  'the library API: not listening when made; listen() resolves with the address, twice for two listeners; close() ends it all',
  async t => {
    const a = await startUpstream(t, 'a')
    const balancer = createBalancer({ upstreams: [{ host: '127.0.0.1', port: Number(a.spec.split(':')[1]) }] })
    t.equal(balancer.address(), undefined, 'no address before listen()')
    t.notOk(balancer.listening, 'not listening')
    const first = await balancer.listen(0, '127.0.0.1')
    t.teardown(() => balancer.close())
    t.same(balancer.address(), first, "address() is the first listener's")
    const second = await balancer.listen(0, '127.0.0.1')
    t.not(second.port, first.port, 'a second listener has a port of its own')
    t.equal((await fetchText(first.port)).headers['x-served-by'], 'a', 'the first serves')
    t.equal((await fetchText(second.port)).headers['x-served-by'], 'a', 'the second serves the same upstreams')
    t.equal(balancer.connectionsTotal, 2, 'the connections of both are counted together')
    await t.rejects(balancer.listen(first.port, '127.0.0.1'), { code: 'EADDRINUSE' }, 'a port in use rejects')
    t.equal(balancer.servers.length, 2, 'and adds no listener')
    const idle = request({ host: '127.0.0.1', port: second.port, agent: false, headers: { connection: 'keep-alive' } }).end()
    await once(idle, 'response')
    await balancer.close()
    t.notOk(balancer.listening, 'close() stops every listener, a kept-alive connection included')
    await t.rejects(fetchText(first.port), { code: 'ECONNREFUSED' }, 'nothing listens any more')
  },
)
