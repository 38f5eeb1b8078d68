// One lookup of an upstream name against a real DNS server (a UDP stub on 127.0.0.1): A and AAAA,
// SRV into primaries and backups, and which outcomes are answers, empties or failures.
import t from 'tap'
import { createResolver, lookup, nameOf, parseResolver, srvName, type DnsName } from '../../src/upstreams/dns-lookup.js'
import { startDnsStub } from '../fixtures/dns-stub.js'

const plain = (host: string, port = 5000, backup = false): DnsName => ({ host, port, service: undefined, backup })
const service = (host: string, name: string, backup = false): DnsName => ({ host, port: undefined, service: name, backup })

t.test('A and AAAA records become addresses on the line port, with the smallest TTL', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('app.test', { a: ['127.0.0.2', '127.0.0.3'], aaaa: ['::1'], ttl: 7 })
  const resolver = createResolver([dns.server])
  const r = await lookup(resolver, plain('app.test'))
  t.same(
    r,
    {
      kind: 'answer',
      found: [
        { address: '127.0.0.2', port: 5000, weight: undefined, backup: false },
        { address: '127.0.0.3', port: 5000, weight: undefined, backup: false },
        { address: '::1', port: 5000, weight: undefined, backup: false },
      ],
      ttl: 7,
    },
    'both families, the line port, the records TTL',
  )
  t.same(dns.queries.slice().sort(), ['A app.test', 'AAAA app.test'], 'one query of each type')
  dns.zone.set('back.test', { a: ['127.0.0.4'] })
  const b = await lookup(resolver, plain('back.test', 6000, true))
  t.same(
    b.kind === 'answer' && b.found,
    [{ address: '127.0.0.4', port: 6000, weight: undefined, backup: true }],
    'a backup line makes backups',
  )
})

t.test('NXDOMAIN and names without records are empty; SERVFAIL and silence are failures', async t => {
  const dns = await startDnsStub(t)
  const resolver = createResolver([dns.server], 100, 1)
  t.same(
    await lookup(resolver, plain('missing.test')),
    { kind: 'empty', why: 'A missing.test: NXDOMAIN, AAAA missing.test: NXDOMAIN' },
    'NXDOMAIN',
  )
  dns.zone.set('bare.test', {})
  t.same(
    await lookup(resolver, plain('bare.test')),
    { kind: 'empty', why: 'A bare.test: no records, AAAA bare.test: no records' },
    'no records',
  )
  dns.zone.set('broken.test', { rcode: 'SERVFAIL' })
  const broken = await lookup(resolver, plain('broken.test'))
  t.equal(broken.kind, 'failed', 'SERVFAIL is a failure, not an empty answer')
  t.match(broken.kind === 'failed' && broken.why, /^A broken\.test: ESERVFAIL$/, 'with the code of the first family that failed')
  dns.zone.set('app.test', { a: ['127.0.0.2'] })
  dns.silent = true
  const silent = await lookup(resolver, plain('app.test'))
  t.same(silent, { kind: 'failed', why: 'A app.test: ETIMEOUT' }, 'a server that does not answer times out: a failure')
})

t.test('one family failing fails the lookup, even when the other answered', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('half.test', { a: ['127.0.0.2'] })
  dns.drop.add('AAAA')
  const r = await lookup(createResolver([dns.server], 100, 1), plain('half.test'))
  t.same(
    r,
    { kind: 'failed', why: 'AAAA half.test: ETIMEOUT' },
    'A answered, AAAA timed out: the whole lookup failed, so the caller keeps its last answer',
  )
})

t.test('SRV: the lowest priority number are primaries, the rest backups, with the records weights', async t => {
  const dns = await startDnsStub(t)
  dns.zone.set('_http._tcp.app.test', {
    srv: [
      { target: 'b.app.test', port: 5002, priority: 20, weight: 1 },
      { target: 'a.app.test', port: 5001, priority: 10, weight: 3 },
      { target: 'a2.app.test', port: 5003, priority: 10, weight: 0 },
      { target: 'gone.app.test', port: 5004, priority: 10, weight: 1 },
      { target: '127.0.0.9', port: 5005, priority: 30, weight: 2 },
      // The same address and port again, from a lower priority: kept once, from the first.
      { target: 'a.app.test', port: 5001, priority: 40, weight: 9 },
    ],
  })
  dns.zone.set('a.app.test', { a: ['127.0.0.2'], ttl: 5 })
  dns.zone.set('a2.app.test', { a: ['127.0.0.3'], ttl: 3 })
  dns.zone.set('b.app.test', { a: ['127.0.0.4'], ttl: 9 })
  const resolver = createResolver([dns.server])
  const r = await lookup(resolver, service('app.test', 'http'))
  t.same(
    r,
    {
      kind: 'answer',
      found: [
        { address: '127.0.0.2', port: 5001, weight: 3, backup: false },
        { address: '127.0.0.3', port: 5003, weight: 1, backup: false },
        { address: '127.0.0.4', port: 5002, weight: 1, backup: true },
        { address: '127.0.0.9', port: 5005, weight: 2, backup: true },
      ],
      ttl: 3,
    },
    'priority 10 primaries (weight 0 taken as 1, a target with no address left out), the rest backups; an IP target used as is',
  )
  const b = await lookup(resolver, service('app.test', 'http', true))
  t.same(
    b.kind === 'answer' && b.found.map(f => [f.address, f.backup]),
    [
      ['127.0.0.2', true],
      ['127.0.0.3', true],
    ],
    'on a backup line, as in nginx, the lowest priority number are backups and the rest ignored',
  )
  dns.zone.set('ip.test', { srv: [{ target: '127.0.0.5', port: 7000, priority: 0, weight: 1 }] })
  const ip = await lookup(resolver, { ...service('ip.test', '_x._tcp') })
  t.equal(ip.kind, 'empty', 'a service name with a dot is joined as it is: _x._tcp.ip.test does not exist')
  dns.zone.set('_x._tcp.ip.test', { srv: [{ target: '127.0.0.5', port: 7000, priority: 0, weight: 1 }] })
  const joined = await lookup(resolver, { ...service('ip.test', '_x._tcp') })
  t.same(
    joined,
    { kind: 'answer', found: [{ address: '127.0.0.5', port: 7000, weight: 1, backup: false }], ttl: undefined },
    'an IP target has no TTL of its own',
  )
})

t.test('SRV empties and failures', async t => {
  const dns = await startDnsStub(t)
  const resolver = createResolver([dns.server], 100, 1)
  t.same(await lookup(resolver, service('none.test', 'http')), { kind: 'empty', why: 'SRV _http._tcp.none.test: NXDOMAIN' }, 'no SRV name')
  dns.zone.set('_http._tcp.dot.test', { srv: [{ target: '.', port: 0, priority: 0, weight: 0 }] })
  t.same(
    await lookup(resolver, service('dot.test', 'http')),
    { kind: 'empty', why: 'SRV _http._tcp.dot.test: no service offered (target ".")' },
    'target "." (RFC 2782)',
  )
  dns.zone.set('_http._tcp.lost.test', { srv: [{ target: 'lost.test', port: 1, priority: 0, weight: 0 }] })
  t.same(
    await lookup(resolver, service('lost.test', 'http')),
    { kind: 'empty', why: 'SRV _http._tcp.lost.test: no target has an address' },
    'targets without addresses',
  )
  dns.zone.set('_http._tcp.bad.test', { srv: [{ target: 'bad.test', port: 1, priority: 0, weight: 0 }] })
  dns.zone.set('bad.test', { rcode: 'SERVFAIL' })
  const bad = await lookup(resolver, service('bad.test', 'http'))
  t.equal(bad.kind, 'failed', 'a target whose lookup fails fails the whole')
  dns.zone.set('_http._tcp.srvfail.test', { rcode: 'SERVFAIL' })
  t.same(
    await lookup(resolver, service('srvfail.test', 'http')),
    { kind: 'failed', why: 'SRV _http._tcp.srvfail.test: ESERVFAIL' },
    'SERVFAIL on the SRV name',
  )
})

t.test('names, SRV names and --resolver values', async t => {
  t.equal(nameOf(plain('app.test', 80)), 'app.test:80', 'a plain name with its port')
  t.equal(nameOf(service('app.test', 'http')), 'app.test service=http', 'a service name')
  t.equal(srvName('http', 'app.test'), '_http._tcp.app.test', 'nginx: no dot, the RFC 2782 name over TCP')
  t.equal(srvName('_h._udp', 'app.test'), '_h._udp.app.test', 'nginx: a dot, joined as given')
  for (const ok of ['10.0.0.2', '10.0.0.2:5353', '[fd00::2]:53', '[fd00::2]', 'fd00::2', ' 127.0.0.1 ']) {
    t.equal(parseResolver(ok), ok.trim(), `${ok} is taken`)
  }
  for (const bad of ['dns.example', '10.0.0.2:0', '10.0.0.2:70000', '[10.0.0.2]:53', '[nope]', '', 53, 'fd00::zz']) {
    t.throws(
      () => parseResolver(bad),
      { name: 'ConfigError', message: /^resolver: .* is not an IP address with an optional port/ },
      `${JSON.stringify(bad)} is refused`,
    )
  }
})
