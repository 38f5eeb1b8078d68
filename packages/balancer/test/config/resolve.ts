import { writeFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { parseUpstream } from '../../src/config/parse.js'
import { resolveConfig } from '../../src/config/resolve.js'
import { makeCa } from '../fixtures/certs.js'
import { tempDir } from '../fixtures/temp.js'

t.test('defaults are the tutorial stack', async t => {
  t.same(
    resolveConfig({}),
    {
      port: 8080,
      host: '0.0.0.0',
      https: undefined,
      redirectHttps: false,
      hsts: undefined,
      upstreamCa: undefined,
      upstreams: [
        { host: '127.0.0.1', port: 5000 },
        { host: '127.0.0.1', port: 5001 },
      ],
      drainTimeout: 30_000,
      quiet: false,
      accessLogTo: '-',
      logFormat: 'combined',
      adminPort: undefined,
      adminHost: '127.0.0.1',
      adminAllowedHosts: [],
      workers: 1,
      maxFails: 1,
      failTimeout: 10_000,
      connectTimeout: 5_000,
      timeout: 60_000,
      retryOnTimeout: false,
      retries: undefined,
      retryTimeout: 0,
      clientHeaderTimeout: 20_000,
      clientBodyTimeout: 60_000,
      tunnelTimeout: 3_600_000,
      keepAliveTimeout: 75_000,
      upstreamIdleTimeout: 4_000,
      health: undefined,
      policy: 'round-robin',
      hashKey: { kind: 'ip' },
      queueSize: 1000,
      queueTimeout: 30_000,
      reclaimAfter: 1000,
      sticky: undefined,
      stickySecretGenerated: false,
      adminToken: undefined,
      stateFile: undefined,
      resolveInterval: 30_000,
      resolver: undefined,
    },
    'port 8080, the two backends, nginx timeouts and failure defaults, no active checks',
  )
})

t.test('upstreams are parsed like nginx server lines', async t => {
  const cases: [string, object][] = [
    ['127.0.0.1:5000', { host: '127.0.0.1', port: 5000 }],
    ['app.internal:80', { host: 'app.internal', port: 80 }],
    ['[::1]:5000', { host: '::1', port: 5000 }],
    ['  10.0.0.2:81   max_fails=3 fail_timeout=30s ', { host: '10.0.0.2', port: 81, maxFails: 3, failTimeout: 30_000 }],
    ['h:1 max_fails=0 fail_timeout=250ms', { host: 'h', port: 1, maxFails: 0, failTimeout: 250 }],
  ]
  for (const [spec, want] of cases) t.same(parseUpstream(spec), want, spec)
})

t.test('bad upstreams are refused with a message naming them', async t => {
  const cases: [unknown, RegExp][] = [
    ['localhost', /upstream: "localhost" is not host:port/],
    ['http://a:1', /upstream: "http:\/\/a:1" is not host:port/],
    ['[nope]:80', /upstream: "\[nope\]:80" is not host:port/],
    ['a:0', /upstream a:0 port: "0" is not a whole number from 1 to 65535/],
    ['a:70000', /upstream a:70000 port: "70000" is not a whole number from 1 to 65535/],
    ['a:1 weight', /upstream a:1: unknown parameter "weight"/],
    ['a:1 max_fails', /upstream a:1: unknown parameter "max_fails"/],
    ['a:1 max_fails=x', /upstream a:1 max_fails: "x" is not a whole number/],
    ['a:1 fail_timeout=soon', /upstream a:1 fail_timeout: "soon" is not a duration/],
    [5000, /upstream: 5000 is not a string/],
  ]
  for (const [spec, message] of cases) t.throws(() => parseUpstream(spec), { name: 'ConfigError', message }, String(spec))
})

t.test('flags override the file, the file overrides defaults', async t => {
  const file = { port: 9000, host: '127.0.0.1', upstream: ['10.0.0.1:1', '10.0.0.2:2'], 'max-fails': 2, 'fail-timeout': 5, quiet: true }
  const config = resolveConfig({ port: '9001', upstream: ['10.0.0.3:3'], timeout: '1500ms' }, file)
  t.equal(config.port, 9001, 'flag port wins')
  t.equal(config.host, '127.0.0.1', 'file host used')
  t.same(config.upstreams, [{ host: '10.0.0.3', port: 3 }], 'flag upstreams replace the file list')
  t.equal(config.maxFails, 2, 'file max-fails')
  t.equal(config.failTimeout, 5000, 'a bare number is seconds')
  t.equal(config.timeout, 1500, 'ms unit')
  t.equal(config.quiet, true, 'file quiet')
  t.same(resolveConfig({}, { upstream: '10.0.0.9:9' }).upstreams, [{ host: '10.0.0.9', port: 9 }], 'one upstream as a string')
  t.equal(resolveConfig({ 'fail-timeout': '2m' }).failTimeout, 120_000, 'minutes')
  t.equal(resolveConfig({ 'tunnel-timeout': '1.5h' }).tunnelTimeout, 5_400_000, 'hours')
  t.equal(resolveConfig({ 'tunnel-timeout': '0' }).tunnelTimeout, 0, 'tunnel-timeout 0: never')
})

t.test('active health checks and retries', async t => {
  const config = resolveConfig({ 'health-path': '/healthz', 'health-status': '200', retries: '2' }, { 'health-interval': '500ms' })
  t.same(
    config.health,
    { path: '/healthz', interval: 500, timeout: 1000, healthyThreshold: 2, unhealthyThreshold: 3, status: [200, 200] },
    'a health path turns checks on, with HAProxy-like defaults; one status is a range of one',
  )
  t.equal(config.retries, 2, 'retries')
  t.same(resolveConfig({ 'health-path': '/h', 'health-status': '204-302' }).health?.status, [204, 302], 'a status range')
})

t.test('policies and sticky sessions', async t => {
  const c = resolveConfig({ policy: 'hash', 'hash-key': 'cookie:sid', 'queue-size': '5', 'queue-timeout': '2s' })
  t.same([c.policy, c.hashKey, c.queueSize, c.queueTimeout], ['hash', { kind: 'cookie', name: 'sid' }, 5, 2000], 'policy, key, queue')
  const given = resolveConfig({ 'sticky-cookie': 'sy', 'sticky-secret': 's3cret' })
  t.same([given.sticky, given.stickySecretGenerated], [{ cookie: 'sy', secret: 's3cret' }, false], 'a given secret')
  const made = resolveConfig({ 'sticky-cookie': 'sy' })
  t.ok(Buffer.isBuffer(made.sticky?.secret) && made.stickySecretGenerated, 'no secret: a random one, flagged for a warning')
  const dir = tempDir(t, 'secret')
  writeFileSync(join(dir, 'secret'), '  from-a-file\n')
  writeFileSync(join(dir, 'empty'), '\n')
  t.same(
    resolveConfig({ 'sticky-cookie': 'sy', 'sticky-secret-file': join(dir, 'secret') }).sticky,
    { cookie: 'sy', secret: 'from-a-file' },
    'a secret file, trimmed',
  )
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ policy: 'fastest' }, /^policy: "fastest" is not one of round-robin, least-requests, random-two, hash, first$/],
    [{ 'sticky-cookie': 'a b' }, /^sticky-cookie: "a b" is not a cookie name$/],
    [{ 'sticky-cookie': 'sy', 'sticky-secret': '' }, /^sticky-secret: must be a non-empty string$/],
    [{ 'sticky-cookie': 'sy', 'sticky-secret-file': join(dir, 'none') }, /^sticky-secret-file .*none: cannot be read \(ENOENT\)$/],
    [{ 'sticky-cookie': 'sy', 'sticky-secret-file': join(dir, 'empty') }, /^sticky-secret-file .*empty: is empty$/],
  ]
  for (const [flags, message] of bad) t.throws(() => resolveConfig(flags), { name: 'ConfigError', message }, JSON.stringify(flags))
})

t.test('workers, admin listener and access log', async t => {
  t.equal(resolveConfig({ workers: 'auto' }).workers, availableParallelism(), 'auto: one per core')
  t.equal(resolveConfig({ workers: '3' }).workers, 3)
  t.equal(resolveConfig({}, { workers: 2 }).workers, 2, 'a number in the file')
  for (const bad of ['0', '65', 'many', 1.5]) {
    t.throws(() => resolveConfig({ workers: bad }), {
      message: `workers: ${JSON.stringify(bad)} is not a whole number from 1 to 64, or auto`,
    })
  }
  const c = resolveConfig({ 'admin-port': '0', 'admin-host': '::1', 'access-log': '/var/log/sy.log', 'log-format': 'json' })
  t.same([c.adminPort, c.adminHost, c.accessLogTo, c.logFormat], [0, '::1', '/var/log/sy.log', 'json'])
  t.same(
    resolveConfig({ 'admin-allowed-host': ['Dash.Example.', 'pinned.example:9443', '[FD00::1]'] }).adminAllowedHosts,
    ['dash.example', 'pinned.example:9443', '[fd00::1]'],
    'allowed hosts, in lower case and without the trailing dot',
  )
  t.same(
    resolveConfig({}, { 'admin-allowed-host': 'dash.example' }).adminAllowedHosts,
    ['dash.example'],
    'one name as a string in the file',
  )
  t.same(
    resolveConfig({ 'admin-allowed-host': ['a.example'] }, { 'admin-allowed-host': ['b.example'] }).adminAllowedHosts,
    ['a.example'],
    'flags replace the file, as for upstream',
  )
  t.equal(resolveConfig({ 'access-log': 'off' }).accessLogTo, undefined, 'off')
  t.equal(resolveConfig({ quiet: true, 'access-log': '/x.log' }).accessLogTo, undefined, '--quiet wins: no access log')
})

t.test('bad settings name the bad value', async t => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ port: '80a' }, /^port: "80a" is not a whole number from 0 to 65535$/],
    [{ port: 65536 }, /^port: 65536 is not/],
    [{ port: 1.5 }, /^port: 1.5 is not/],
    [{ port: '' }, /^port: "" is not/],
    [{ host: '' }, /^host: "" is not an address/],
    [{ host: 7 }, /^host: 7 is not an address/],
    [{ upstream: [] }, /^upstream: at least one is needed/],
    [{ upstream: ['a:1', 'a:1 max_fails=2'] }, /^upstream: a:1 is listed twice$/],
    [{ 'max-fails': -1 }, /^max-fails: -1 is not a whole number/],
    [{ 'fail-timeout': '-1s' }, /^fail-timeout: "-1s" is not a duration/],
    [{ timeout: 'forever' }, /^timeout: "forever" is not a duration/],
    [{ timeout: Number.NaN }, /^timeout: null is not a duration/],
    [{ quiet: 'yes' }, /^quiet: "yes" is not true or false$/],
    [{ 'health-path': 'healthz' }, /^health-path: "healthz" is not a path starting with \/$/],
    [{ 'health-path': 7 }, /^health-path: 7 is not a path/],
    [{ 'health-path': '/h', 'health-status': '399-200' }, /^health-status: "399-200" is not a status range like 200-399$/],
    [{ 'health-path': '/h', 'health-status': 'ok' }, /^health-status: "ok" is not a status range/],
    [{ 'health-path': '/h', 'health-status': 200 }, /^health-status: 200 is not a status range/],
    [{ 'health-path': '/h', 'healthy-threshold': 0 }, /^healthy-threshold: 0 is not a whole number from 1/],
    [{ retries: 'many' }, /^retries: "many" is not a whole number/],
    [
      { 'admin-allowed-host': ['ok.example', 'http://dash.example'] },
      /^admin-allowed-host: "http:\/\/dash\.example" is not a host name with an optional :port, like admin\.example/,
    ],
    [{ 'admin-allowed-host': 'dash.example:99999' }, /^admin-allowed-host: "dash\.example:99999" is not a host name/],
    [{ 'admin-allowed-host': [7] }, /^admin-allowed-host: 7 is not a host name/],
  ]
  for (const [flags, message] of cases) {
    t.throws(() => resolveConfig(flags), { name: 'ConfigError', code: 'SWITCHYARD_CONFIG', message }, JSON.stringify(flags))
  }
})

t.test('HTTPS settings: pairs of files, redirect, HSTS, minimum version, the upstream CA', async t => {
  const https = resolveConfig({
    'https-port': '8443',
    'tls-cert': ['a.crt', 'b.crt'],
    'tls-key': ['a.key', 'b.key'],
    hsts: '365d',
    'redirect-https': true,
  })
  t.same(
    https.https,
    {
      port: 8443,
      certificates: [
        { cert: 'a.crt', key: 'a.key' },
        { cert: 'b.crt', key: 'b.key' },
      ],
      http2: true,
      minVersion: 'TLSv1.2',
    },
    'pairs by rank, h2 on, TLS 1.2 at least',
  )
  t.equal(https.redirectHttps, true, 'redirect on')
  t.equal(https.hsts, 365 * 86_400_000, 'HSTS a year')
  const one = resolveConfig({
    'https-port': 0,
    'tls-cert': 'a.crt',
    'tls-key': 'a.key',
    http2: false,
    'tls-min-version': 'TLSv1.3',
    port: 'off',
  })
  t.same(
    [one.port, one.https?.http2, one.https?.minVersion, one.https?.port],
    [undefined, false, 'TLSv1.3', 0],
    '--port off, --no-http2, TLS 1.3 only, a single pair from a config file',
  )
  const ca = makeCa(t)
  t.same(resolveConfig({ 'upstream-ca': ca.cert }).upstreamCa, ca.pem, 'the upstream CA is read')
})

t.test('bad HTTPS settings name the flag', async t => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ 'https-port': 8443 }, /^https-port: needs --tls-cert FILE --tls-key FILE pairs \(got 0 certificate\(s\) and 0 key\(s\)\)$/],
    [
      { 'https-port': 8443, 'tls-cert': ['a', 'b'], 'tls-key': ['a'] },
      /^https-port: needs --tls-cert FILE --tls-key FILE pairs \(got 2 certificate\(s\) and 1 key\(s\)\)$/,
    ],
    [{ 'tls-cert': 'a', 'tls-key': 'a' }, /^tls-cert: certificates are for the HTTPS listener; give --https-port too$/],
    [{ 'https-port': 8443, 'tls-cert': [''], 'tls-key': ['k'] }, /^tls-cert: "" is not a file$/],
    [{ 'https-port': 8443, 'tls-cert': ['c'], 'tls-key': [7] }, /^tls-key: 7 is not a file$/],
    [{ 'https-port': 70000, 'tls-cert': 'c', 'tls-key': 'k' }, /^https-port: "?70000"? is not a whole number from 0 to 65535$/],
    [{ 'tls-min-version': 'TLSv1.1' }, /^tls-min-version: "TLSv1.1" is not TLSv1.2 or TLSv1.3$/],
    [{ port: 'off' }, /^port: "off" leaves no listener; give --https-port too$/],
    [{ 'redirect-https': true }, /^redirect-https: needs both a plain --port and an --https-port to redirect to$/],
    [{ 'redirect-https': true, port: 'off', 'https-port': 1, 'tls-cert': 'c', 'tls-key': 'k' }, /^redirect-https: needs both/],
    [{ hsts: 'forever' }, /^hsts: "forever" is not a duration/],
    [{ 'upstream-ca': '/nonexistent/ca.pem' }, /^upstream-ca \/nonexistent\/ca\.pem: cannot be read \(ENOENT\)$/],
  ]
  for (const [flags, message] of cases) t.throws(() => resolveConfig(flags), { name: 'ConfigError', message }, JSON.stringify(flags))
})

t.test('the runtime settings: admin token file, state file, resolve interval, resolver', async t => {
  const dir = tempDir(t, 'config')
  const token = join(dir, 'token')
  writeFileSync(token, 'abcdefghijklmnop0123\n')
  const c = resolveConfig({
    'admin-token-file': token,
    'state-file': join(dir, 'state.json'),
    'resolve-interval': '5s',
    resolver: '127.0.0.1:5353',
  })
  t.same(
    [c.adminToken, c.stateFile, c.resolveInterval, c.resolver],
    ['abcdefghijklmnop0123', join(dir, 'state.json'), 5000, '127.0.0.1:5353'],
    'each read',
  )
  t.throws(() => resolveConfig({ 'state-file': '' }), { message: 'state-file: "" is not a file name' }, 'an empty file name')
  t.throws(() => resolveConfig({}, { 'admin-token-file': 7 }), { message: 'admin-token-file: 7 is not a file name' }, 'not a string')
  t.throws(
    () => resolveConfig({ resolver: 'dns.example' }),
    { message: /^resolver: "dns\.example" is not an IP address/ },
    'a resolver by name',
  )
})
