// The public API: what the package exports, and nothing else (the rest is internal and may move).
import t from 'tap'

t.test('the package exports exactly its public API', async t => {
  const api = await import('../src/index.js')
  t.same(
    Object.keys(api).sort(),
    [
      'AdminServer',
      'Balancer',
      'CONFIG_KEYS',
      'ConfigError',
      'DEFAULTS',
      'InvalidResponseError',
      'LOG_FORMATS',
      'NoUpstreamError',
      'POLICY_NAMES',
      'SETTINGS',
      'UpstreamConnectTimeoutError',
      'UpstreamFailedError',
      'UpstreamTimeoutError',
      'createAccessLog',
      'createAdmin',
      'createBalancer',
      'readConfigFile',
      'resolveConfig',
    ],
    'the values exported',
  )
  const balancer = api.createBalancer({ upstreams: [{ host: '127.0.0.1', port: 1 }] })
  t.ok(balancer instanceof api.Balancer, 'createBalancer() makes a Balancer')
  t.notOk(balancer.listening, 'not listening yet')
  await balancer.close()
})
