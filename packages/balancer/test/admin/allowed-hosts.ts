// Which Host the admin listener answers, decided on its own: every rule as a table. The admin
// tests send the same Hosts over real sockets; here the ports can be any, 80 included, which a
// test cannot bind.
import t from 'tap'
import { AllowedHosts, parseAllowedHost, parseHost, type HostName } from '../../src/admin/allowed-hosts.js'

t.test('a Host is a name or an address in brackets, with an optional port', async t => {
  const cases: [string, HostName | undefined][] = [
    ['localhost:9090', { name: 'localhost', port: 9090 }],
    ['LocalHost', { name: 'localhost', port: undefined }],
    ['localhost.:9090', { name: 'localhost', port: 9090 }],
    ['127.0.0.1:1', { name: '127.0.0.1', port: 1 }],
    ['[::1]:65535', { name: '[::1]', port: 65535 }],
    ['[FD00::1]', { name: '[fd00::1]', port: undefined }],
    ['dash_1.example-corp.internal:080', { name: 'dash_1.example-corp.internal', port: 80 }],
    ['', undefined],
    ['.', undefined],
    ['localhost:', undefined],
    ['localhost:0', undefined],
    ['localhost:65536', undefined],
    ['localhost:123456', undefined],
    ['localhost..', undefined],
    ['a..b', undefined],
    ['::1', undefined],
    ['[::1', undefined],
    ['user@localhost', undefined],
    ['http://localhost', undefined],
    ['localhost/x', undefined],
    ['local host', undefined],
    ['localhost:9090 ', undefined],
    [`${'a'.repeat(262)}`, undefined],
  ]
  for (const [value, want] of cases) t.same(parseHost(value), want, JSON.stringify(value))
  t.same(parseHost(`${'a'.repeat(255)}:65535`), { name: 'a'.repeat(255), port: 65535 }, 'the longest a DNS name with a port can be')
})

t.test('--admin-allowed-host values', async t => {
  t.same(parseAllowedHost(' Dash.Example. '), { name: 'dash.example', port: undefined }, 'trimmed, lower case, without the trailing dot')
  t.same(parseAllowedHost('dash.example:9443'), { name: 'dash.example', port: 9443 })
  for (const bad of ['http://dash.example', 'dash.example:', '*.example', '::1', '', 7, undefined]) {
    t.throws(
      () => parseAllowedHost(bad),
      {
        name: 'ConfigError',
        message: `admin-allowed-host: ${JSON.stringify(bad)} is not a host name with an optional :port, like admin.example, admin.example:9090 or [fd00::1]`,
      },
      `${JSON.stringify(bad)} is refused, naming it`,
    )
  }
})

t.test('the names a listener answers, by its address and port', async t => {
  const at = { address: '127.0.0.1', port: 9090 }
  const onV6 = { address: '::1', port: 9090 }
  const on80 = { address: '127.0.0.1', port: 80 }
  const lan = { address: '10.1.2.3', port: 9090 }
  const mapped = { address: '::ffff:10.1.2.3', port: 9090 }
  const plain = new AllowedHosts(undefined)
  const named = new AllowedHosts('Admin.Internal', ['Dash.Example.', 'pinned.example:9443', '[fd00::1]'])
  const v6 = new AllowedHosts('fd00::7')
  const cases: [AllowedHosts, string, typeof at, boolean, string][] = [
    [plain, 'localhost:9090', at, true, 'localhost with its port'],
    [plain, '127.0.0.1:9090', at, true, '127.0.0.1 with its port'],
    [plain, '[::1]:9090', at, true, '[::1] with its port'],
    [plain, '[::1]:9090', onV6, true, 'whichever loopback the connection used'],
    [plain, 'localhost:9091', at, false, 'another port: another listener'],
    [plain, 'localhost', at, false, 'no port is port 80'],
    [plain, 'localhost', on80, true, 'which is what a browser sends for a listener on port 80'],
    [plain, 'localhost:80', on80, true, 'or with the port written out'],
    [plain, '10.1.2.3:9090', lan, true, 'the address the connection came in on'],
    [plain, '10.1.2.3:9090', mapped, true, 'written as IPv4 when the socket has it IPv4-mapped'],
    [plain, '10.1.2.4:9090', lan, false, 'another address'],
    [plain, 'evil.example:9090', at, false, 'a rebound name'],
    [plain, 'localhost.example:9090', at, false, 'a name that only starts like localhost'],
    [plain, 'admin.internal:9090', at, false, 'the admin host counts only when it was given'],
    [named, 'admin.internal:9090', at, true, '--admin-host with its port'],
    [named, 'admin.internal:9091', at, false, '--admin-host with another port'],
    [named, 'dash.example', at, true, 'an allowed name without a port matches no port'],
    [named, 'dash.example:1234', at, true, 'and any port'],
    [named, 'DASH.example.:8443', at, true, 'in any case, with or without the trailing dot'],
    [named, 'www.dash.example:9090', at, false, 'but not a subdomain'],
    [named, 'pinned.example:9443', at, true, 'an allowed name with a port matches that port'],
    [named, 'pinned.example:9090', at, false, 'and only that one, not even the listener port'],
    [named, 'pinned.example', at, false, 'a missing port is 80'],
    [named, '[fd00::1]:9090', at, true, 'an allowed IPv6 address'],
    [v6, '[fd00::7]:9090', at, true, 'an IPv6 --admin-host, in brackets'],
    [v6, '[FD00::7]:9090', at, true, 'in any case'],
  ]
  for (const [hosts, value, where, want, why] of cases) {
    t.equal(hosts.allows(parseHost(value) as HostName, where), want, `${value} on ${where.address}:${where.port}: ${why}`)
  }
})

t.test('why a request is refused: one line', async t => {
  const hosts = new AllowedHosts(undefined)
  const at = { address: '127.0.0.1', port: 9090 }
  const how = 'the admin listener answers only its own names and those given with --admin-allowed-host'
  t.equal(hosts.refusal(['localhost:9090'], '1.1', at), undefined, 'its own name: answered')
  t.equal(hosts.refusal([], '1.0', at), undefined, 'HTTP/1.0 without a Host: answered, it names no other site')
  t.equal(hosts.refusal([], '1.1', at), `no Host header; ${how}`, 'HTTP/1.1 must send one')
  t.equal(hosts.refusal(['localhost:9090', 'evil.example'], '1.1', at), `2 Host headers; ${how}`, 'two Hosts: which one would it be?')
  t.equal(
    hosts.refusal(['Evil.Example.:9090'], '1.1', at),
    'Host "evil.example:9090" does not name this admin listener; to allow it, add --admin-allowed-host evil.example:9090',
    'a rebound name, and the flag that would allow it',
  )
  t.equal(
    hosts.refusal(['evil.example'], '1.1', at),
    'Host "evil.example" does not name this admin listener; to allow it, add --admin-allowed-host evil.example',
    'without a port, shown without one',
  )
  t.equal(hosts.refusal(['a b'], '1.0', at), `Host "a b" is not a host name; ${how}`, 'not a host at all')
  t.equal(
    hosts.refusal([`x\u0001${'y'.repeat(100)}`], '1.1', at),
    `Host "x\\u0001${'y'.repeat(62)}" is not a host name; ${how}`,
    'shown escaped, and cut short',
  )
})
