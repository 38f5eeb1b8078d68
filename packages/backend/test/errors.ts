import t from 'tap'
import { BodyBudgetError, BodyTooLargeError, ConfigError, RedisUnavailableError } from '../src/errors.js'

t.test('errors have a name, a stable code and a default message', async t => {
  const cases = [
    { err: new ConfigError(), name: 'ConfigError', code: 'SWITCHYARD_BACKEND_CONFIG', message: 'invalid configuration' },
    {
      err: new BodyTooLargeError(),
      name: 'BodyTooLargeError',
      code: 'SWITCHYARD_BACKEND_BODY_TOO_LARGE',
      message: 'request body too large',
    },
    {
      err: new BodyBudgetError(),
      name: 'BodyBudgetError',
      code: 'SWITCHYARD_BACKEND_BODY_BUDGET',
      message: 'request bodies held at once are at their bound',
    },
    {
      err: new RedisUnavailableError(),
      name: 'RedisUnavailableError',
      code: 'SWITCHYARD_BACKEND_REDIS_UNAVAILABLE',
      message: 'Redis is not answering',
    },
  ]
  for (const { err, name, code, message } of cases) {
    t.ok(err instanceof Error, `${name} is an Error`)
    t.equal(err.name, name, `${name} has its name`)
    t.equal(err.code, code, `${name} has code ${code}`)
    t.equal(err.message, message, `${name} has a default message`)
  }
  t.equal(new ConfigError('port: bad').message, 'port: bad', 'a given message replaces the default')
})
