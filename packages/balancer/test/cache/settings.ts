import t from 'tap'
import { CACHE_SETTINGS, parseSize, resolveCacheOptions, type CacheSettingKey } from '../../src/cache/settings.js'

t.test('parseSize: nginx units, with or without b, any case; bad ones named', async t => {
  const cases: [unknown, number][] = [
    ['64mb', 64 * 1024 ** 2],
    ['512K', 512 * 1024],
    ['1g', 1024 ** 3],
    ['2GB', 2 * 1024 ** 3],
    ['100', 100],
    ['100b', 100],
    [4096, 4096],
    ['1.5m', 1.5 * 1024 ** 2],
  ]
  for (const [v, want] of cases) t.equal(parseSize(v, 'cache'), want, `${JSON.stringify(v)}`)
  for (const bad of ['', 'lots', '-1', '5 tb', null, -3])
    t.throws(
      () => parseSize(bad, 'cache'),
      { code: 'SWITCHYARD_CONFIG', message: /^cache: .* is not a size/ },
      `${JSON.stringify(bad)} refused`,
    )
})

t.test('resolveCacheOptions: off unless --cache, the defaults, and bad values', async t => {
  const from = (values: Partial<Record<CacheSettingKey, unknown>>) => (key: CacheSettingKey) => values[key] ?? CACHE_SETTINGS[key].default
  t.equal(resolveCacheOptions(from({})), undefined, 'off by default')
  t.equal(resolveCacheOptions(from({ cache: 'off' })), undefined, 'off')
  t.same(
    resolveCacheOptions(from({ cache: '64mb' })),
    { maxBytes: 64 * 1024 ** 2, maxObject: 8 * 1024 ** 2, defaultTtl: 0, lockTimeout: 5000, staleIfError: 3_600_000 },
    'the defaults',
  )
  t.same(
    resolveCacheOptions(
      from({
        cache: '1g',
        'cache-default-ttl': '10m',
        'cache-lock-timeout': '500ms',
        'cache-stale-if-error': '0',
        'cache-max-object': '1mb',
      }),
    ),
    { maxBytes: 1024 ** 3, maxObject: 1024 ** 2, defaultTtl: 600_000, lockTimeout: 500, staleIfError: 0 },
    'each flag',
  )
  t.throws(() => resolveCacheOptions(from({ cache: '1kb' })), { message: /^cache: "1kb" is below the smallest budget/ }, 'a tiny budget')
  t.throws(
    () => resolveCacheOptions(from({ cache: '1mb', 'cache-max-object': '0' })),
    { message: /^cache-max-object: 0/ },
    'a zero max object',
  )
  t.throws(
    () => resolveCacheOptions(from({ cache: '1mb', 'cache-lock-timeout': 'soon' })),
    { message: /^cache-lock-timeout: "soon" is not a duration/ },
    'a bad duration',
  )
})
