import t from 'tap'
import { parseBoolean, parseDuration, parseHashKey, parseInteger, parseStatusRange, parseUpstream } from '../../src/config/parse.js'

t.test('server-line parameters and config-file objects', async t => {
  const cases: [unknown, object][] = [
    ['127.0.0.1:5000 weight=3 max_fails=2 fail_timeout=5s', { host: '127.0.0.1', port: 5000, weight: 3, maxFails: 2, failTimeout: 5000 }],
    ['b:1 backup', { host: 'b', port: 1, backup: true }],
    ['b:1 down max_conns=10 slow_start=30s', { host: 'b', port: 1, down: true, maxConns: 10, slowStart: 30_000 }],
    [
      { address: '127.0.0.1:5000', weight: 3 },
      { host: '127.0.0.1', port: 5000, weight: 3 },
    ],
    [
      { address: 'b:1', backup: true, down: false, fail_timeout: '2s', max_conns: 4 },
      { host: 'b', port: 1, backup: true, failTimeout: 2000, maxConns: 4 },
    ],
  ]
  for (const [spec, want] of cases) t.same(parseUpstream(spec), want, JSON.stringify(spec))
})

t.test('bad parameters are named', async t => {
  const cases: [unknown, RegExp][] = [
    ['a:1 weight=0', /^upstream a:1 weight: "0" is not a whole number from 1/],
    [
      'a:1 backup=yes',
      /^upstream a:1: unknown parameter "backup=yes" \(allowed: weight=N, .*backup, down, tls, tls_servername=NAME, resolve, service=NAME\)$/,
    ],
    ['a:1 slow_start=soon', /^upstream a:1 slow_start: "soon" is not a duration/],
    ['a:1 max_conns=-1', /^upstream a:1 max_conns: "-1" is not a whole number/],
    [{ weight: 3 }, /^upstream: \{"weight":3\} has no "address"/],
    [{ address: 'a:1', weigth: 3 }, /^upstream a:1: unknown key "weigth" \(allowed: address, weight=N/],
    [[1], /^upstream: \[1\] is not a string/],
    [null, /^upstream: null is not a string/],
  ]
  for (const [spec, message] of cases) t.throws(() => parseUpstream(spec), { name: 'ConfigError', message }, JSON.stringify(spec))
})

t.test('hash keys', async t => {
  t.same(parseHashKey('ip'), { kind: 'ip' }, 'ip')
  t.same(parseHashKey('path'), { kind: 'path' }, 'path')
  t.same(parseHashKey('header:X-User'), { kind: 'header', name: 'x-user' }, 'header names are case-insensitive')
  t.same(parseHashKey('cookie:SID'), { kind: 'cookie', name: 'SID' }, 'cookie names are not')
  t.same(parseHashKey('query:user'), { kind: 'query', name: 'user' }, 'query')
  for (const bad of ['host', 'header:', 'cookie:a b', 7]) {
    t.throws(
      () => parseHashKey(bad),
      { name: 'ConfigError', message: /^hash-key: .* is not ip, path, header:NAME/ },
      `refuses ${JSON.stringify(bad)}`,
    )
  }
})

t.test('durations, whole numbers, booleans and status ranges', async t => {
  const durations: [unknown, number][] = [
    ['500ms', 500],
    ['10s', 10_000],
    ['2m', 120_000],
    ['1h', 3_600_000],
    ['365d', 31_536_000_000],
    ['1.5', 1500],
    [' 3s ', 3000],
    [2, 2000],
    [0, 0],
  ]
  for (const [value, ms] of durations) t.equal(parseDuration(value, 'x'), ms, `${JSON.stringify(value)} is ${ms} ms`)
  for (const bad of ['', '1w', '-1s', 's', Number.POSITIVE_INFINITY, -1, null]) {
    t.throws(
      () => parseDuration(bad, 'x'),
      { name: 'ConfigError', message: /^x: .* is not a duration \(use e\.g\. 500ms, 10s, 2m, 1h, 365d\)$/ },
      `refuses ${String(bad)}`,
    )
  }
  t.equal(parseInteger('42', 'n', 0, 100), 42, 'a string of digits')
  t.equal(parseInteger(7, 'n', 0, 100), 7, 'a number')
  for (const bad of ['4.2', 101, -1, '0x10', true]) {
    t.throws(() => parseInteger(bad, 'n', 0, 100), { message: /^n: .* is not a whole number from 0 to 100$/ }, `refuses ${String(bad)}`)
  }
  t.equal(parseBoolean(false, 'b'), false, 'false')
  t.throws(() => parseBoolean('true', 'b'), { message: 'b: "true" is not true or false' }, 'a string is not a boolean')
  t.same(parseStatusRange('200-399', 's'), [200, 399], 'a range')
  t.same(parseStatusRange(' 204 ', 's'), [204, 204], 'one status')
  for (const bad of ['399-200', '600', '2xx', 200])
    t.throws(() => parseStatusRange(bad, 's'), { message: /^s: .* is not a status range like 200-399$/ }, `refuses ${String(bad)}`)
})

t.test('tls and tls_servername on an upstream line', async t => {
  t.same(parseUpstream('10.0.0.1:443 tls'), { host: '10.0.0.1', port: 443, tls: {} }, 'tls alone')
  t.same(
    parseUpstream('10.0.0.1:443 tls tls_servername=API.Example.test'),
    { host: '10.0.0.1', port: 443, tls: { servername: 'api.example.test' } },
    'with a name, lower-cased',
  )
  t.same(
    parseUpstream('10.0.0.1:443 tls_servername=api.test'),
    { host: '10.0.0.1', port: 443, tls: { servername: 'api.test' } },
    'tls_servername implies tls',
  )
  t.same(
    parseUpstream({ address: 'b:443', tls: true, tls_servername: 'b.test' }),
    { host: 'b', port: 443, tls: { servername: 'b.test' } },
    'a config-file object',
  )
  for (const bad of ['127.0.0.1', 'a/b', 'under_score.test', '']) {
    t.throws(
      () => parseUpstream(`a:1 tls_servername=${bad}`),
      { name: 'ConfigError', message: /^upstream a:1 tls_servername: ".*" is not a DNS name to send as SNI$/ },
      JSON.stringify(bad),
    )
  }
})

t.test('resolve and service= lines, as nginx writes them', async t => {
  t.same(parseUpstream('app.internal:5000 resolve weight=2'), { host: 'app.internal', port: 5000, resolve: true, weight: 2 }, 'resolve')
  t.same(
    parseUpstream('app.internal service=http resolve backup'),
    { host: 'app.internal', port: 0, service: 'http', resolve: true, backup: true },
    'service= takes no port',
  )
  t.same(
    parseUpstream({ address: 'app.internal', service: '_h._udp', resolve: true }),
    { host: 'app.internal', port: 0, service: '_h._udp', resolve: true },
    'as an object',
  )
  const bad: [unknown, RegExp][] = [
    ['app.internal service=http', /^upstream app\.internal: service= needs resolve, as in nginx$/],
    ['app.internal:80 service=http resolve', /is not a host name without a port, as service= takes the ports from SRV records$/],
    ['app.internal resolve', /is not host:port/],
    ['127.0.0.1:80 resolve', /^upstream 127\.0\.0\.1:80: resolve needs a host name, not an IP address$/],
    ['app.internal service=a/b resolve', /unknown parameter "service=a\/b"/],
  ]
  for (const [spec, message] of bad) t.throws(() => parseUpstream(spec), { name: 'ConfigError', message }, String(spec))
})
