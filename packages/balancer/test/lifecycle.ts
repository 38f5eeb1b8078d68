import { once } from 'node:events'
import { Agent, request, type IncomingMessage } from 'node:http'
import t from 'tap'
import { closedPort, fetchText, startBalancer, startRawUpstream, startUpstream } from './fixtures/servers.js'

const wait = (ms: number) => new Promise(resolve => setTimeout(resolve, ms))

t.test('drain lets in-flight requests finish with Connection: close, then closes', async t => {
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('finished'), 300)
    else res.end('quick')
  })
  const { balancer, port } = await startBalancer(t, [a.spec])
  // An idle kept-alive connection, which drain closes at once.
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const idle = request({ host: '127.0.0.1', port, agent })
  const socketAssigned = once(idle, 'socket')
  idle.end()
  const [idleRes] = (await once(idle, 'response')) as [IncomingMessage]
  const [idleSocket] = (await socketAssigned) as [import('node:net').Socket]
  idleRes.resume()
  await once(idleRes, 'end')
  const idleClosed = once(idleSocket, 'close')

  const slow = fetchText(port, { path: '/slow' })
  while (a.seen.length < 2) await wait(5)
  const drained = balancer.drain(5000)
  await idleClosed
  t.pass('the idle keep-alive connection was closed at once')
  const reply = await slow
  t.equal(reply.body, 'finished', 'the in-flight request completed')
  t.equal(reply.headers.connection, 'close', 'with Connection: close')
  await drained
  t.notOk(balancer.listening, 'then the balancer stopped listening')
  await t.rejects(fetchText(port), { code: 'ECONNREFUSED' }, 'and new connections are refused')
})

t.test('drain cuts what is still open after its timeout', async t => {
  const a = await startUpstream(t, 'a', () => {})
  const { balancer, port } = await startBalancer(t, [a.spec])
  const hanging = fetchText(port).catch((err: NodeJS.ErrnoException) => err.code)
  while (a.seen.length < 1) await wait(5)
  const started = Date.now()
  await balancer.drain(300)
  t.ok(Date.now() - started >= 250, 'it waited for the drain timeout')
  t.equal(await hanging, 'ECONNRESET', 'then cut the hanging request')
})

t.test('an error answered while draining closes its connection', async t => {
  const resets = await startRawUpstream(t, socket => setTimeout(() => socket.resetAndDestroy(), 200))
  const { balancer, port } = await startBalancer(t, [resets.spec])
  const agent = new Agent({ keepAlive: true })
  t.teardown(() => agent.destroy())
  const req = request({ host: '127.0.0.1', port, agent })
  req.end()
  while (resets.connections < 1) await wait(5)
  void balancer.drain(2000)
  const [res] = (await once(req, 'response')) as [IncomingMessage]
  t.equal(res.statusCode, 502, 'the upstream reset: 502')
  t.equal(res.headers.connection, 'close', 'with Connection: close while draining')
  res.resume()
})

t.test('reload swaps upstreams without dropping a request, and keeps the state of those it keeps', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const dead = await closedPort()
  const spec = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })
  const { balancer, port, logs } = await startBalancer(t, [a.spec, dead])
  await fetchText(port)
  await fetchText(port)
  t.equal(logs.length, 1, 'the dead upstream is marked down')
  const kept = balancer.pool.upstreams[1]

  // Steady load from 8 clients while the upstream set changes under it.
  let stop = false
  const statuses: number[] = []
  const load = Array.from({ length: 8 }, async () => {
    while (!stop) statuses.push((await fetchText(port)).status)
  })
  const sets = [
    [a.spec, b.spec, dead],
    [b.spec, c.spec, dead],
    [c.spec, dead],
    [a.spec, c.spec, dead],
  ]
  for (const set of sets) {
    balancer.reload({ upstreams: set.map(spec), upstreamIdleTimeout: 1000 + set.length, log: l => logs.push(l) })
    // Each set serves 20 requests of the load before the next: a count of answers, not a time.
    const until = statuses.length + 20
    while (statuses.length < until) await wait(5)
  }
  stop = true
  await Promise.all(load)
  t.ok(statuses.length >= 80, `steady load ran across the four sets (${statuses.length} requests)`)
  t.same([...new Set(statuses)], [200], 'every request during the reloads was answered 200')
  t.equal(balancer.pool.upstreams[2], kept, 'an upstream kept across reloads is the same object')
  t.equal(logs.length, 1, 'so the dead one stayed down, and was not tried again')
  t.same(
    balancer.pool.upstreams.map(u => u.id),
    [a.spec, c.spec, dead],
    'the last set is in force',
  )
  t.ok(c.seen.length > 0 && b.seen.length > 0, 'added upstreams took traffic')
})

t.test('active health checks run while listening and restart when a reload changes them', async t => {
  let healthy = true
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/healthz') res.writeHead(healthy ? 200 : 503)
    res.end('a')
  })
  const b = await startUpstream(t, 'b')
  const health = { path: '/healthz', interval: 50, timeout: 200, healthyThreshold: 1, unhealthyThreshold: 1, status: [200, 299] as const }
  const { balancer, port, logs } = await startBalancer(t, [a.spec, b.spec], { health })
  t.ok(balancer.upstreams.checker, 'a checker exists')
  healthy = false
  while (!logs.some(l => l.includes('marked down'))) await wait(20)
  t.match(logs[0], `upstream ${a.spec} marked down: active check failed 1 time: GET /healthz -> 503`, 'the flip is logged with its reason')
  const served = new Set<string>()
  for (let i = 0; i < 4; i++) served.add((await fetchText(port)).headers['x-served-by'] as string)
  t.same([...served], ['b'], 'the down upstream gets no traffic')

  const before = balancer.upstreams.checker
  balancer.reload({
    upstreams: balancer.pool.upstreams.map(u => ({ host: u.host, port: u.port })),
    health: { ...health, path: '/other' },
    log: l => logs.push(l),
  })
  t.not(balancer.upstreams.checker, before, 'new check settings make a new checker')
  healthy = true
  while (!logs.some(l => l.includes('is up again'))) await wait(20)
  t.pass('the new checker runs at once, on the new path, and brings a back')
  balancer.reload({ upstreams: [{ host: '127.0.0.1', port: b.port }] })
  t.equal(balancer.upstreams.checker, undefined, 'a reload without checks stops them')
  balancer.reload({ upstreams: [{ host: '127.0.0.1', port: b.port }], health })
  t.ok(balancer.upstreams.checker, 'and one with checks starts them again; closing the balancer stops them')
})
