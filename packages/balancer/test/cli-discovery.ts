// DNS discovery end to end: the built CLI with --resolver pointed at a real UDP DNS server in the test, whose answers
// change; upstreams on 127.0.0.2 and 127.0.0.3 (the loopback range), so that one name has two addresses.
import { once } from 'node:events'
import { createServer, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { startDnsStub } from './fixtures/dns-stub.js'
import { bearer, folder, row, start, status, until } from './fixtures/runtime.js'
import type { UpstreamStatus } from '../src/observe/status.js'
import { fetchText, type Reply } from './fixtures/servers.js'

interface Backend {
  address: string
  port: number
  id: string
  hits: number
  held: ServerResponse[]
}

/** A backend on `address` (port 0, or `port`) that answers its address, and holds /slow until released. */
async function backend(t: Test, address: string, port = 0): Promise<Backend> {
  const b: Backend = { address, port: 0, id: '', hits: 0, held: [] }
  const server = createServer((req, res) => {
    b.hits++
    res.setHeader('x-served-by', address)
    if (req.url === '/slow') b.held.push(res)
    else res.end(`hello from ${address}\n`)
  })
  server.listen(port, address)
  await once(server, 'listening')
  b.port = (server.address() as AddressInfo).port
  b.id = `${address}:${b.port}`
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return b
}

const servedBy = async (port: number, path = '/'): Promise<string> => String((await fetchText(port, { path })).headers['x-served-by'])

t.test('A records: an address added gets traffic within the TTL; one removed drains and finishes its request', async t => {
  const dns = await startDnsStub(t)
  const two = await backend(t, '127.0.0.2')
  const three = await backend(t, '127.0.0.3', two.port)
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  const { r, port, admin } = await start(t, ['--resolver', dns.server, '--upstream', `app.test:${two.port} resolve`])
  t.match(
    r.stdout.find(l => l.includes('listening on')),
    new RegExp(`over 127\\.0\\.0\\.2:${two.port}$`),
    'started with the address it found',
  )
  t.equal(await servedBy(port), '127.0.0.2', 'traffic on it')
  t.equal(row(await status(admin), two.id)?.from, `app.test:${two.port}`, 'status names the line it came from')

  dns.zone.set('app.test', { a: ['127.0.0.2', '127.0.0.3'], ttl: 1 })
  await until(
    'traffic on the new address',
    () => servedBy(port),
    by => by === '127.0.0.3',
  )
  t.pass('the added address gets traffic')

  // A request held on .2, then .2 leaves the answer.
  let slow: Promise<Reply> | undefined
  while (slow === undefined) {
    const p = fetchText(port, { path: '/slow' })
    await until(
      'the slow request placed',
      async () => two.held.length + three.held.length,
      n => n > 0,
    )
    if (two.held.length > 0) slow = p
    else three.held.splice(0).forEach(res => res.end('released\n'))
  }
  dns.zone.set('app.test', { a: ['127.0.0.3'], ttl: 1 })
  await until(
    '.2 draining',
    () => status(admin),
    s => row(s, two.id)?.state === 'draining',
  )
  const hits = two.hits
  for (let i = 0; i < 4; i++) t.equal(await servedBy(port), '127.0.0.3', `request ${i + 1} goes to .3`)
  t.equal(two.hits, hits, 'the removed address gets no new request')
  two.held.splice(0).forEach(res => res.end('slow done\n'))
  t.equal((await (slow as Promise<Reply>)).body, 'slow done\n', 'its request in flight completed')
  await r.line(/discovery: app\.test:\d+ -> 127\.0\.0\.3:\d+ \(added none; removed 127\.0\.0\.2:\d+\)/)
  t.pass('the change is logged')
})

t.test('SRV: the lowest priority number are primaries, the rest backups', async t => {
  const dns = await startDnsStub(t)
  const primary = await backend(t, '127.0.0.2')
  const backup = await backend(t, '127.0.0.3')
  dns.zone.set('_http._tcp.app.test', {
    srv: [
      { target: 'one.app.test', port: primary.port, priority: 10, weight: 5 },
      { target: 'two.app.test', port: backup.port, priority: 20, weight: 1 },
    ],
  })
  dns.zone.set('one.app.test', { a: ['127.0.0.2'] })
  dns.zone.set('two.app.test', { a: ['127.0.0.3'] })
  const { port, admin } = await start(t, ['--resolver', dns.server, '--upstream', 'app.test service=http resolve'])
  const s = await status(admin)
  t.same(
    s.upstreams.map(u => [u.id, u.backup, u.weight, u.from]),
    [
      [primary.id, false, 5, 'app.test service=http'],
      [backup.id, true, 1, 'app.test service=http'],
    ],
    'a primary with the record weight, and a backup',
  )
  for (let i = 0; i < 4; i++) t.equal(await servedBy(port), '127.0.0.2', `request ${i + 1} goes to the primary`)
  t.equal(backup.hits, 0, 'the backup stands by')
})

t.test('a resolver that times out keeps the last answer; a name with nothing at the start is allowed, with a warning', async t => {
  const dns = await startDnsStub(t)
  const two = await backend(t, '127.0.0.2')
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  const { tokenFile } = folder(t)
  const { r, port, admin } = await start(t, [
    '--admin-token-file',
    tokenFile,
    '--resolver',
    dns.server,
    '--upstream',
    `app.test:${two.port} resolve`,
    '--upstream',
    `late.test:${two.port} resolve`,
  ])
  t.ok(
    r.stdout.some(l => l.startsWith(`switchyard: discovery: warning: late.test:${two.port} has no address yet (A late.test: NXDOMAIN`)),
    'a warning for the name with no address, and the balancer started',
  )
  // A resolve line added through the API: looked up before the answer, which lists what it found.
  dns.zone.set('more.test', { a: ['127.0.0.2', '127.0.0.3'], ttl: 1 })
  const added = await fetchText(admin, {
    method: 'POST',
    path: '/upstreams',
    body: JSON.stringify({ upstream: `more.test:${two.port + 1} resolve` }),
    headers: bearer,
  })
  t.same(
    [added.status, (JSON.parse(added.body) as UpstreamStatus[]).map(u => u.from)],
    [201, [`more.test:${two.port + 1}`, `more.test:${two.port + 1}`]],
    'a resolve line added through the API: 201 with the upstreams it found',
  )
  dns.silent = true
  await r.line(/discovery: app\.test:\d+: lookup failed \(A app\.test: ETIMEOUT\); keeping the last answer: 127\.0\.0\.2:\d+/)
  for (let i = 0; i < 3; i++) t.equal(await servedBy(port), '127.0.0.2', `request ${i + 1} still reaches the last answer`)
})
