import t from 'tap'
import { CLI_KEYS, parseId, parseSize, parseWholeNumber, resolveCliConfig, resolveOptions } from '../src/config.js'

const MIB = 1024 * 1024

t.test('parseSize reads bytes and 1024-based kb/mb/gb in any case', async t => {
  const cases: Array<[unknown, number]> = [
    ['1', 1],
    ['512', 512],
    ['1kb', 1024],
    ['64mb', 64 * MIB],
    ['64MB', 64 * MIB],
    ['2Gb', 2 * 1024 * MIB],
    [' 10 kb ', 10 * 1024],
    [4096, 4096],
  ]
  for (const [input, bytes] of cases) t.equal(parseSize(input, 'size'), bytes, `${JSON.stringify(input)} is ${bytes} bytes`)
})

t.test('parseSize refuses what is not a size of at least one byte', async t => {
  for (const bad of ['', '0', '0kb', '64xb', '1.5mb', '-1', 'mb', '64 m b', 1.5, 0, -3, null, true, 2 ** 60]) {
    t.throws(
      () => parseSize(bad, '--cache-max-bytes'),
      { name: 'ConfigError', message: `--cache-max-bytes: ${JSON.stringify(bad)} is not a size of at least 1 byte` },
      `${JSON.stringify(bad)} is refused with the flag and the value named`,
    )
  }
})

t.test('parseWholeNumber takes digits or integers within bounds', async t => {
  t.equal(parseWholeNumber('0', 'port', 0, 65535), 0, 'the lower bound is allowed')
  t.equal(parseWholeNumber('65535', 'port', 0, 65535), 65535, 'the upper bound is allowed')
  t.equal(parseWholeNumber(80, 'port', 0, 65535), 80, 'a number is taken as is')
  for (const bad of ['65536', '-1', '1.5', '0x10', '', ' 80', 'eighty', 1.5, -1, 70000, [1, 2], undefined]) {
    t.throws(
      () => parseWholeNumber(bad, '--port', 0, 65535),
      { name: 'ConfigError', message: `--port: ${JSON.stringify(bad)} is not a whole number from 0 to 65535` },
      `${JSON.stringify(bad)} is refused, naming the allowed range`,
    )
  }
})

t.test('parseId takes visible ASCII without spaces', async t => {
  t.equal(parseId('backend-5000', 'id'), 'backend-5000', 'a plain id passes')
  for (const bad of ['', 'two words', 'tab\there', 'caf\u00e9', 42]) {
    t.throws(() => parseId(bad, '--id'), { name: 'ConfigError', message: /^--id: .* is not an id/ }, `${JSON.stringify(bad)} is refused`)
  }
})

t.test('resolveOptions fills in the defaults', async t => {
  const resolved = resolveOptions({})
  t.equal(resolved.id, undefined, 'no id: the server derives backend-<port>')
  t.equal(resolved.cacheTtl, 60, 'cacheTtl defaults to 60 s')
  t.equal(resolved.cacheMaxBytes, 64 * MIB, 'cacheMaxBytes defaults to 64 MiB')
  t.equal(resolved.maxBodyBytes, 10 * MIB, 'maxBodyBytes defaults to 10 MiB')
  t.equal(resolved.maxBodyBytesTotal, 64 * MIB, 'maxBodyBytesTotal defaults to 64 MiB')
  t.equal(resolved.exposeStats, false, '/stats is off by default')
  t.equal(resolved.wsMaxMessage, MIB, 'WebSocket messages up to 1 MiB by default')
  t.equal(resolved.accessLog, undefined, 'no access log by default')
  t.match(
    resolved,
    {
      redis: undefined,
      redisPrefix: 'switchyard:',
      jobsConcurrency: 2,
      sessionTtl: 1800,
      worker: true,
      lockDuration: 30,
      jobBackoff: 1000,
      redisTimeout: 500,
      cacheLocalTtl: 1000,
    },
    'no Redis; prefix switchyard:, 2 jobs at once, 30 idle minutes, a worker in process, 30 s locks, 1 s first backoff, 500 ms to answer, 1 s local copies',
  )
  t.same(Object.keys(resolved.jobTypes), ['report'], 'one job type: report')
  t.equal(resolved.log('x'), undefined, 'the default log drops lines')
  const before = performance.now()
  const now = resolved.clock()
  t.ok(now >= before && now <= performance.now(), 'the default clock is performance.now()')
})

t.test('resolveOptions keeps given values and checks them', async t => {
  const clock = (): number => 7
  const accessLog = (): void => {}
  t.match(
    resolveOptions({
      id: 'blue',
      cacheTtl: 0,
      cacheMaxBytes: 100,
      maxBodyBytes: 10,
      maxBodyBytesTotal: 20,
      exposeStats: true,
      wsMaxMessage: 5,
      clock,
      accessLog,
    }),
    {
      id: 'blue',
      cacheTtl: 0,
      cacheMaxBytes: 100,
      maxBodyBytes: 10,
      maxBodyBytesTotal: 20,
      exposeStats: true,
      wsMaxMessage: 5,
      clock,
      accessLog,
    },
    'every given option is kept',
  )
  t.throws(() => resolveOptions({ cacheTtl: -1 }), { message: /^cacheTtl: -1 is not a whole number/ }, 'a negative TTL is refused')
  t.throws(() => resolveOptions({ cacheMaxBytes: 0 }), { message: /^cacheMaxBytes: 0 / }, 'an empty cache bound is refused')
  t.throws(() => resolveOptions({ maxBodyBytes: 0.5 }), { message: /^maxBodyBytes: 0.5 / }, 'a fractional body bound is refused')
  t.throws(() => resolveOptions({ maxBodyBytesTotal: -1 }), { message: /^maxBodyBytesTotal: -1 / }, 'a negative total is refused')
  t.throws(() => resolveOptions({ wsMaxMessage: 0 }), { message: /^wsMaxMessage: 0 / }, 'a WebSocket bound of 0 is refused')
  t.throws(() => resolveOptions({ id: 'a b' }), { message: /^id: "a b" is not an id/ }, 'an id with a space is refused')
  const custom = { parse: () => ({}), run: async () => null }
  const log = (): void => {}
  t.match(
    resolveOptions({
      redis: 'redis://:pw@127.0.0.1:6390/1',
      redisPrefix: 'shop:',
      jobsConcurrency: 5,
      sessionTtl: 60,
      worker: false,
      lockDuration: 2,
      jobBackoff: 10,
      jobTypes: { custom },
      redisTimeout: 100,
      cacheLocalTtl: 0,
      log,
    }),
    {
      redis: { url: 'redis://:pw@127.0.0.1:6390/1', shown: 'redis://:***@127.0.0.1:6390/1', password: 'pw' },
      redisPrefix: 'shop:',
      jobsConcurrency: 5,
      sessionTtl: 60,
      worker: false,
      lockDuration: 2,
      jobBackoff: 10,
      jobTypes: { custom },
      redisTimeout: 100,
      cacheLocalTtl: 0,
      log,
    },
    'the Redis and job options are kept',
  )
  t.equal(resolveOptions({ redis: 'redis://h' }).worker, false, 'with Redis, no worker in process by default')
  t.equal(resolveOptions({ redis: 'redis://h', worker: true }).worker, true, 'unless asked for')
  t.throws(() => resolveOptions({ worker: false }), { message: /^worker: off needs --redis/ }, 'no worker and no Redis: refused')
  t.throws(() => resolveOptions({ redis: 'http://h' }), { message: /^redis: "http:\/\/h" has scheme http:/ }, 'a bad URL is refused')
  t.throws(() => resolveOptions({ redisPrefix: '' }), { message: /^redisPrefix: "" is not a key prefix/ }, 'an empty prefix is refused')
  t.throws(
    () => resolveOptions({ cacheLocalTtl: 1001 }),
    { message: /^cacheLocalTtl: 1001 is not a whole number from 0 to 1000$/ },
    'local copies over 1 s are refused',
  )
})

t.test('resolveCliConfig applies the documented defaults', async t => {
  t.same(
    resolveCliConfig({}),
    {
      port: 5000,
      host: '127.0.0.1',
      id: undefined,
      cacheTtl: 60,
      cacheMaxBytes: 64 * MIB,
      shutdownTimeout: 10,
      quiet: false,
      logHealthChecks: false,
      exposeStats: false,
      wsMaxMessage: MIB,
      maxBodyBytesTotal: 64 * MIB,
      redis: undefined,
      redisPrefix: 'switchyard:',
      jobsConcurrency: 2,
      sessionTtl: 1800,
      worker: true,
      lockDuration: 30,
    },
    'port 5000, host 127.0.0.1, ttl 60 s, 64 MiB, 10 s to drain, not quiet, no /stats, 1 MiB messages, 64 MiB of bodies, no Redis, 2 jobs at once, 30 idle minutes, a worker, 30 s locks',
  )
  t.same(
    CLI_KEYS,
    [
      'port',
      'host',
      'id',
      'cache-ttl',
      'cache-max-bytes',
      'shutdown-timeout',
      'quiet',
      'log-health-checks',
      'expose-stats',
      'ws-max-message',
      'max-body-bytes-total',
      'redis',
      'redis-prefix',
      'jobs-concurrency',
      'session-ttl',
      'worker',
      'lock-duration',
    ],
    'the flags read',
  )
})

t.test('resolveCliConfig reads the flags as typed', async t => {
  t.same(
    resolveCliConfig({
      port: '0',
      host: '0.0.0.0',
      id: 'backend-a',
      'cache-ttl': '0',
      'cache-max-bytes': '512kb',
      'shutdown-timeout': '3',
      quiet: true,
      'log-health-checks': true,
      'expose-stats': true,
      'ws-max-message': '64kb',
      'max-body-bytes-total': '1gb',
    }),
    {
      port: 0,
      host: '0.0.0.0',
      id: 'backend-a',
      cacheTtl: 0,
      cacheMaxBytes: 512 * 1024,
      shutdownTimeout: 3,
      quiet: true,
      logHealthChecks: true,
      exposeStats: true,
      wsMaxMessage: 64 * 1024,
      maxBodyBytesTotal: 1024 * MIB,
      redis: undefined,
      redisPrefix: 'switchyard:',
      jobsConcurrency: 2,
      sessionTtl: 1800,
      worker: true,
      lockDuration: 30,
    },
    'every flag is parsed',
  )
  t.match(
    resolveCliConfig({
      redis: 'redis://h:1',
      'redis-prefix': 'a:',
      'jobs-concurrency': '4',
      'session-ttl': '60',
      worker: true,
      'lock-duration': '5',
    }),
    { redis: 'redis://h:1', redisPrefix: 'a:', jobsConcurrency: 4, sessionTtl: 60, worker: true, lockDuration: 5 },
    'the Redis and job flags are parsed',
  )
  t.match(
    resolveCliConfig({}, { REDIS_URL: 'redis://:pw@h:2' }),
    { redis: 'redis://:pw@h:2', worker: false },
    'REDIS_URL stands in for --redis',
  )
  t.match(
    resolveCliConfig({ redis: 'redis://flag' }, { REDIS_URL: 'redis://env' }),
    { redis: 'redis://flag' },
    'the flag wins over REDIS_URL',
  )
  t.match(resolveCliConfig({}, { REDIS_URL: '' }), { redis: undefined }, 'an empty REDIS_URL is none')
})

t.test('resolveCliConfig names the flag and the bad value', async t => {
  const cases: Array<[Parameters<typeof resolveCliConfig>[0], RegExp]> = [
    [{ port: '65536' }, /^--port: "65536" is not a whole number from 0 to 65535$/],
    [{ port: 'http' }, /^--port: "http" is not a whole number from 0 to 65535$/],
    [{ host: '' }, /^--host: "" is not an address to listen on/],
    [{ host: ['a', 'b'] }, /^--host: \["a","b"\] is not an address/],
    [{ id: '' }, /^--id: "" is not an id/],
    [{ 'cache-ttl': '-1' }, /^--cache-ttl: "-1" is not a whole number from 0 to 31536000$/],
    [{ 'cache-max-bytes': '64xb' }, /^--cache-max-bytes: "64xb" is not a size of at least 1 byte/],
    [{ 'max-body-bytes-total': '1.5mb' }, /^--max-body-bytes-total: "1.5mb" is not a size of at least 1 byte/],
    [{ 'ws-max-message': '0' }, /^--ws-max-message: "0" is not a size of at least 1 byte/],
    [{ 'shutdown-timeout': '1.5' }, /^--shutdown-timeout: "1.5" is not a whole number from 0 to 3600$/],
    [{ redis: 'redis://:hunter2@' }, /^--redis: "redis:\/\/:\*\*\*@" is not a Redis URL \(redis:\/\/\[user:password@\]host/],
    [{ 'redis-prefix': 'a b' }, /^--redis-prefix: "a b" is not a key prefix/],
    [{ 'jobs-concurrency': '0' }, /^--jobs-concurrency: "0" is not a whole number from 1 to 1000$/],
    [{ 'session-ttl': '0' }, /^--session-ttl: "0" is not a whole number from 1 to 31536000$/],
    [{ 'lock-duration': '1h' }, /^--lock-duration: "1h" is not a whole number from 1 to 3600$/],
    [{ worker: false }, /^--worker: off needs --redis/],
  ]
  for (const [flags, message] of cases) {
    t.throws(() => resolveCliConfig(flags), { name: 'ConfigError', message }, `${JSON.stringify(flags)} is refused`)
  }
  t.throws(
    () => resolveCliConfig({}, { REDIS_URL: 'redis://:hunter2@host/x' }),
    { message: /^REDIS_URL: "redis:\/\/:\*\*\*@host\/x" has a path/ },
    'a bad REDIS_URL is named as such, password masked',
  )
})
