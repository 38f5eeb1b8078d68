// The discovery loop against a real DNS server (a UDP stub on 127.0.0.1) whose answers change
// while it runs: additions, removals, failures that hold the last answer, NXDOMAIN that drains
// only once it has lasted the hold.
import { once } from 'node:events'
import t, { type Test } from 'tap'
import { createResolver, type DnsName, type Found } from '../../src/upstreams/dns-lookup.js'
import { Discovery, MIN_INTERVAL, type DiscoveryOptions } from '../../src/upstreams/discovery.js'
import { startDnsStub, type DnsStub } from '../fixtures/dns-stub.js'

const name = (host: string, port = 5000): DnsName => ({ host, port, service: undefined, backup: false })
const at = (address: string, port = 5000, backup = false): Found => ({ address, port, weight: undefined, backup })

/** A deadline only a real failure reaches: the loop runs at the TTL (1 s) and the tests wait a few rounds. */
const DEADLINE_MS = 15_000

function within<T>(t: Test, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${DEADLINE_MS} ms`)), DEADLINE_MS)
  })
  return Promise.race([p, late]).finally(() => clearTimeout(timer))
}

function start(t: Test, dns: DnsStub, options: Partial<DiscoveryOptions> = {}) {
  const logs: string[] = []
  const discovery = new Discovery({ resolver: createResolver([dns.server], 200, 1), log: line => logs.push(line), ...options })
  t.teardown(() => discovery.stop())
  const changes: [string, Found[]][] = []
  discovery.on('change', (label, found) => changes.push([label, found]))
  const nextChange = () => within(t, 'a change', once(discovery, 'change')) as Promise<[string, Found[]]>
  return { discovery, logs, changes, nextChange }
}

t.test('an address added is handed on within the TTL, one removed is taken away', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.3', '127.0.0.2'], ttl: 1 })
  const { discovery, logs, changes, nextChange } = start(t, dns)
  const label = await discovery.watch(name('app.test'))
  t.equal(label, 'app.test:5000', 'the label names the line')
  t.same(discovery.found(label), [at('127.0.0.2'), at('127.0.0.3')], 'the first answer, in order, before watch() resolves')
  t.same(changes, [[label, [at('127.0.0.2'), at('127.0.0.3')]]], 'handed on once')
  t.same(
    logs,
    ['discovery: app.test:5000 -> 127.0.0.2:5000, 127.0.0.3:5000 (added 127.0.0.2:5000, 127.0.0.3:5000; removed none)'],
    'logged once',
  )

  // The stub rotates its answer: the same addresses are no change.
  dns.zone.set('app.test', { a: ['127.0.0.2', '127.0.0.3'], ttl: 1 })
  await within(t, 'the next lookup', dns.nextQuery('A app.test'))
  dns.zone.set('app.test', { a: ['127.0.0.2', '127.0.0.3', '127.0.0.4'], ttl: 1 })
  const [, added] = await nextChange()
  t.same(added, [at('127.0.0.2'), at('127.0.0.3'), at('127.0.0.4')], 'the new address, at the next lookup')
  t.equal(changes.length, 2, 'the rotated answer changed nothing')
  dns.zone.set('app.test', { a: ['127.0.0.4'], aaaa: ['::2'], ttl: 1 })
  const [, left] = await nextChange()
  t.same(left, [at('127.0.0.4'), at('::2')], 'the removed ones are gone; AAAA records count as much as A')
  t.equal(
    logs.at(-1),
    'discovery: app.test:5000 -> 127.0.0.4:5000, [::2]:5000 (added [::2]:5000; removed 127.0.0.2:5000, 127.0.0.3:5000)',
    'each change logged',
  )
  t.equal(await discovery.watch(name('app.test')), label, 'watching it again does nothing')
  t.same(discovery.labels, [label], 'one watch')
  t.same(discovery.found('other.test:1'), [], 'a name not watched has nothing')
})

t.test('a failing resolver keeps the last answer, logging one line per streak', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  // Retries are at 1 s, doubling up to the interval: 1 s here, so that the test takes seconds.
  const { discovery, logs, changes } = start(t, dns, { interval: 1 })
  await discovery.watch(name('app.test'))
  dns.silent = true
  // Two lookups that time out: one line for all of them.
  for (let i = 0; i < 2; i++) await within(t, `failed lookup ${i + 1}`, dns.nextQuery('A app.test'))
  await within(t, 'the timeout of the last', dns.nextQuery('A app.test'))
  t.same(discovery.found('app.test:5000'), [at('127.0.0.2')], 'the last answer is kept')
  t.equal(changes.length, 1, 'nothing handed on')
  const failures = logs.filter(l => l.includes('lookup failed'))
  t.same(
    failures,
    ['discovery: app.test:5000: lookup failed (A app.test: ETIMEOUT); keeping the last answer: 127.0.0.2:5000'],
    'one line for the streak',
  )
  dns.silent = false
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  while (!logs.includes('discovery: app.test:5000 resolves again'))
    await within(t, 'a lookup after the outage', dns.nextQuery('A app.test'))
  t.pass('the end of the streak is logged')
  dns.zone.set('app.test', { rcode: 'SERVFAIL' })
  while (logs.filter(l => l.includes('lookup failed')).length < 2) await within(t, 'a SERVFAIL', dns.nextQuery('A app.test'))
  t.match(logs.at(-1), /lookup failed \(A app\.test: ESERVFAIL\); keeping the last answer: 127\.0\.0\.2:5000$/, 'a new streak, a new line')
  t.same(discovery.found('app.test:5000'), [at('127.0.0.2')], 'SERVFAIL keeps the answer too')
})

t.test('NXDOMAIN or an empty answer drains only once it has lasted the hold', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  const { discovery, logs } = start(t, dns, { hold: 60_000, interval: 1 })
  await discovery.watch(name('app.test'))
  // A short gap: the name is missing for one lookup, and back.
  dns.zone.delete('app.test')
  while (!logs.some(l => l.includes('drain if this lasts 60s'))) await within(t, 'the NXDOMAIN lookup', dns.nextQuery('A app.test'))
  t.equal(
    logs.at(-1),
    'discovery: app.test:5000: A app.test: NXDOMAIN, AAAA app.test: NXDOMAIN; its addresses (127.0.0.2:5000) drain if this lasts 60s',
    'the hold is announced',
  )
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  while (!logs.includes('discovery: app.test:5000 resolves again')) await within(t, 'the name back', dns.nextQuery('A app.test'))
  t.same(discovery.found('app.test:5000'), [at('127.0.0.2')], 'a short gap costs nothing')

  // A short hold, to see it end: an empty answer (no records) this time.
  const quick = start(t, dns, { hold: 300, interval: 1 })
  dns.zone.set('quick.test', { a: ['127.0.0.5'], ttl: 1 })
  await quick.discovery.watch(name('quick.test'))
  dns.zone.set('quick.test', {})
  const [label, found] = await quick.nextChange()
  t.same([label, found], ['quick.test:5000', []], 'drained once the empty answer lasted the hold')
  t.match(quick.logs.at(-1), /^discovery: quick\.test:5000 -> none \(added none; removed 127\.0\.0\.5:5000\)$/, 'the change is logged')
  t.ok(
    quick.logs.includes(
      'discovery: quick.test:5000: A quick.test: no records, AAAA quick.test: no records for 0.3s; draining 127.0.0.5:5000',
    ),
    'with why',
  )
  // Still empty: nothing more to drain, and nothing more logged.
  const lines = quick.logs.length
  await within(t, 'a lookup after the drain', dns.nextQuery('A quick.test'))
  await within(t, 'and another', dns.nextQuery('A quick.test'))
  t.equal(quick.logs.length, lines, 'nothing more logged')
  dns.zone.set('quick.test', { a: ['127.0.0.6'], ttl: 1 })
  const [, back] = await quick.nextChange()
  t.same(back, [at('127.0.0.6')], 'an address that comes later is taken')
})

t.test('a name with no address at the start is allowed, with a warning, and taken once it resolves', async t => {
  const dns = await startDnsStub(t)
  const { discovery, logs, nextChange } = start(t, dns)
  const label = await discovery.watch(name('late.test'))
  t.same(discovery.found(label), [], 'nothing yet')
  t.same(
    logs,
    [
      'discovery: warning: late.test:5000 has no address yet (A late.test: NXDOMAIN, AAAA late.test: NXDOMAIN); starting without it, and looking it up again',
    ],
    'a warning',
  )
  dns.zone.set('late.test', { a: ['127.0.0.7'], ttl: 1 })
  const [, found] = await nextChange()
  t.same(found, [at('127.0.0.7')], 'taken at a later lookup (1 s, then 2 s, ...)')

  dns.silent = true
  const failing = start(t, dns)
  await failing.discovery.watch(name('slow.test'))
  t.match(
    failing.logs[0],
    /^discovery: warning: slow\.test:5000 has no address yet \(A slow\.test: ETIMEOUT\)/,
    'a failed first lookup warns too',
  )
  dns.silent = false
  dns.zone.set('slow.test', { a: ['127.0.0.8'], ttl: 1 })
  await failing.nextChange()
  t.equal(failing.logs[1], 'discovery: slow.test:5000 resolves again', 'the end of the failures is logged')
})

t.test('the TTL is capped by the interval, and held to at least a second', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('long.test', { a: ['127.0.0.2'], ttl: 3600 })
  dns.zone.set('zero.test', { a: ['127.0.0.3'], ttl: 0 })
  const { discovery } = start(t, dns, { interval: 1 })
  const before = performance.now()
  await discovery.watch(name('long.test'))
  await discovery.watch(name('zero.test'))
  // An hour's TTL is looked up again at the 1 s cap (the interval itself is held to 1 s).
  await within(t, 'the capped lookup', dns.nextQuery('A long.test'))
  await within(t, 'the TTL 0 lookup', dns.nextQuery('A zero.test'))
  t.ok(performance.now() - before >= MIN_INTERVAL, 'not before a second')
  // SRV records with IP targets carry no TTL Node shows: looked up again at the interval.
  dns.zone.set('_http._tcp.srv.test', {
    srv: [
      { target: '127.0.0.5', port: 5001, priority: 2, weight: 1 },
      { target: '127.0.0.4', port: 5002, priority: 1, weight: 1 },
    ],
  })
  const label = await discovery.watch({ host: 'srv.test', port: undefined, service: 'http', backup: false })
  t.same(
    discovery.found(label),
    [
      { address: '127.0.0.4', port: 5002, weight: 1, backup: false },
      { address: '127.0.0.5', port: 5001, weight: 1, backup: true },
    ],
    'primaries first',
  )
  await within(t, 'the SRV lookup at the interval', dns.nextQuery('SRV _http._tcp.srv.test'))
})

t.test('unwatch and stop end the lookups; an answer to a name no longer watched is dropped', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.2'], ttl: 1 })
  dns.silent = true
  const { discovery, changes } = start(t, dns)
  const pending = discovery.watch(name('app.test'))
  await within(t, 'the first query', dns.nextQuery('A app.test'))
  discovery.stop()
  await pending
  t.same(discovery.labels, [], 'nothing watched')
  t.same(changes, [], 'nothing handed on')
  discovery.unwatch('app.test:5000')
  t.pass('unwatching a name not watched does nothing')

  // The log is optional.
  dns.silent = false
  const quiet = new Discovery({ resolver: createResolver([dns.server], 200, 1) })
  t.teardown(() => quiet.stop())
  t.same(await quiet.watch(name('nowhere.test')), 'nowhere.test:5000', 'a warning to nobody')
})
