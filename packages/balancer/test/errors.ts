// The errors Switchyard raises on purpose: a name, a stable code, a default message.
import t from 'tap'
import {
  ConfigError,
  InvalidResponseError,
  NoUpstreamError,
  UpstreamConnectTimeoutError,
  UpstreamFailedError,
  UpstreamTimeoutError,
  errorCode,
} from '../src/errors.js'

t.test('each error has its name, code and message', async t => {
  const table: [Error & { code: string }, string, string, string][] = [
    [new ConfigError('port: bad'), 'ConfigError', 'SWITCHYARD_CONFIG', 'port: bad'],
    [new NoUpstreamError(), 'NoUpstreamError', 'SWITCHYARD_NO_UPSTREAM', 'no upstream available: every upstream is marked down'],
    [new UpstreamFailedError(), 'UpstreamFailedError', 'SWITCHYARD_UPSTREAM_FAILED', 'every upstream that was tried failed'],
    [new UpstreamTimeoutError(), 'UpstreamTimeoutError', 'SWITCHYARD_UPSTREAM_TIMEOUT', 'upstream timed out'],
    [new UpstreamConnectTimeoutError(), 'UpstreamConnectTimeoutError', 'SWITCHYARD_CONNECT_TIMEOUT', 'upstream connection timed out'],
    [new InvalidResponseError('status 999'), 'InvalidResponseError', 'SWITCHYARD_INVALID_RESPONSE', 'status 999'],
  ]
  for (const [err, name, code, message] of table) {
    t.ok(err instanceof Error, `${name} is an Error`)
    t.same([err.name, err.code, err.message], [name, code, message], name)
    t.equal(errorCode(err), code, `errorCode() reads ${code}`)
  }
  t.equal(errorCode(Object.assign(new Error('x'), { code: 'ECONNRESET' })), 'ECONNRESET', 'a system error’s code')
  t.equal(errorCode(new Error('no code')), 'undefined', 'an error without one')
})
