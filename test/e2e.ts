// End to end: the real backend package behind the real balancer, all on 127.0.0.1 port 0,
// talking HTTP over real sockets: the tutorial's stack, without nginx.
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { createBackend, type Backend } from '@switchyard/backend'
import { createBalancer } from '@switchyard/balancer'

async function backend(t: Test, id: string, port = 0): Promise<Backend> {
  const server = createBackend({ id, cacheTtl: 60 })
  server.listen(port, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => stop(server))
  return server
}

async function stop(server: Backend): Promise<void> {
  if (!server.listening) return
  server.close()
  server.closeAllConnections()
  await once(server, 'close')
}

const portOf = (server: { address(): unknown }): number => (server.address() as AddressInfo).port

async function balancer(t: Test, backends: Backend[], failTimeout = 10_000) {
  const logs: string[] = []
  const lb = createBalancer({
    upstreams: backends.map(b => ({ host: '127.0.0.1', port: portOf(b) })),
    failTimeout,
    log: line => logs.push(line),
  })
  const { port } = await lb.listen(0, '127.0.0.1')
  t.teardown(() => lb.close())
  return { url: `http://127.0.0.1:${port}`, logs }
}

t.test('12 sequential GETs alternate strictly between the two backends', async t => {
  const a = await backend(t, 'backend-a')
  const b = await backend(t, 'backend-b')
  const { url } = await balancer(t, [a, b])
  const seen: string[] = []
  for (let i = 0; i < 12; i++) {
    const res = await fetch(`${url}/`)
    const body = await res.text()
    const by = res.headers.get('x-served-by') as string
    t.equal(body, `Hello, World! from ${by}`, `response ${i + 1} names its backend`)
    seen.push(by)
  }
  t.same(seen, Array(6).fill(['backend-a', 'backend-b']).flat(), 'a, b, a, b, …')
})

t.test("each backend's cache shows through the balancer", async t => {
  const a = await backend(t, 'backend-a')
  const b = await backend(t, 'backend-b')
  const { url } = await balancer(t, [a, b])
  const results: string[] = []
  for (let i = 0; i < 4; i++) {
    const res = await fetch(`${url}/slow?ms=50`)
    await res.text()
    results.push(`${res.headers.get('x-served-by')} ${res.headers.get('x-cache')}`)
  }
  t.same(
    results,
    ['backend-a MISS', 'backend-b MISS', 'backend-a HIT', 'backend-b HIT'],
    'each backend misses once, then answers from its own cache',
  )
})

t.test('failover: a stopped backend, then all stopped, then one restarted', async t => {
  const a = await backend(t, 'backend-a')
  const b = await backend(t, 'backend-b')
  const bPort = portOf(b)
  const { url, logs } = await balancer(t, [a, b], 500)
  await stop(b)
  const statuses: number[] = []
  for (let i = 0; i < 20; i++) statuses.push((await fetch(`${url}/`)).status)
  t.same(statuses, Array(20).fill(200), 'with one backend stopped, 20 GETs are all 200')

  const payload = JSON.stringify({ order: 42, items: Array(5000).fill('widget') })
  const before = a.stats.toJSON()['POST /echo'] ?? 0
  const post = await fetch(`${url}/echo`, { method: 'POST', body: payload })
  t.equal(post.status, 200, 'a POST while b is down goes to a')
  t.equal(await post.text(), payload, 'with its body intact')
  t.equal((a.stats.toJSON()['POST /echo'] ?? 0) - before, 1, 'and arrives once')

  await stop(a)
  const all = await fetch(`${url}/`)
  t.ok(all.status === 502 || all.status === 503, `all stopped: ${all.status}`)
  t.match(await all.text(), /^50[23] /, 'with a short text body')
  // A pooled connection reset as it is reused is retried but not counted (the keep-alive
  // race), so marking both down can take a request more; never more than a handful.
  let status = 0
  for (let i = 0; i < 5 && status !== 503; i++) status = (await fetch(`${url}/`)).status
  t.equal(status, 503, 'then 503: every upstream is marked down')

  const b2 = await backend(t, 'backend-b2', bPort)
  await new Promise(resolve => setTimeout(resolve, 600))
  const back = await fetch(`${url}/`)
  t.equal(back.status, 200, 'after fail_timeout the restarted backend is back in rotation')
  t.equal(back.headers.get('x-served-by'), 'backend-b2', 'and answers')
  t.ok(b2.listening, 'restarted on the same port')
  t.ok(
    logs.some(l => l.includes('is up again')),
    'its recovery is logged',
  )
})
