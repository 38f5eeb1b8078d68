import t from 'tap'
import { ConfigError } from '../../src/errors.js'
import { parseRedisUrl, redact } from '../../src/redis/url.js'

t.test('parseRedisUrl takes redis: and rediss: URLs, with or without credentials and a database', async t => {
  t.same(
    parseRedisUrl('redis://127.0.0.1:6379', '--redis'),
    { url: 'redis://127.0.0.1:6379', shown: 'redis://127.0.0.1:6379', password: undefined },
    'plain',
  )
  t.same(
    parseRedisUrl('rediss://app:s%40cret@cache.example:6380/2', '--redis'),
    { url: 'rediss://app:s%40cret@cache.example:6380/2', shown: 'rediss://app:***@cache.example:6380/2', password: 's@cret' },
    'TLS, user, an escaped password (decoded for masking), a database',
  )
  t.equal(parseRedisUrl('redis://localhost/', 'x').shown, 'redis://localhost/', 'no port, a bare slash')
  t.equal(parseRedisUrl('redis://user@localhost', 'x').password, undefined, 'a user alone has no password')
})

t.test('parseRedisUrl refuses what node-redis could not use, naming it with the password masked', async t => {
  const cases: Array<[unknown, RegExp]> = [
    [42, /^--redis: 42 is not a Redis URL \(redis:\/\/\[user:password@\]host\[:port\]\[\/db\]/],
    ['localhost:6379', /"localhost:6379" has scheme localhost: instead of redis: or rediss:/],
    ['not a url', /"not a url" is not a Redis URL/],
    ['http://:pw@host', /^--redis: "http:\/\/:\*\*\*@host" has scheme http:/],
    ['redis://:pw@', /^--redis: "redis:\/\/:\*\*\*@" is not a Redis URL/],
    ['redis:///0', /"redis:\/\/\/0" names no host/],
    ['redis://:pw@host/cache', /"redis:\/\/:\*\*\*@host\/cache" has a path that is not a database number/],
    ['redis://host/0?timeout=5', /has a query or fragment/],
    ['redis://host#x', /has a query or fragment/],
  ]
  for (const [value, message] of cases) {
    t.throws(() => parseRedisUrl(value, '--redis'), ConfigError, `${JSON.stringify(value)} is a ConfigError`)
    let said = ''
    try {
      parseRedisUrl(value, '--redis')
    } catch (err) {
      said = (err as Error).message
    }
    t.match(said, message, `${JSON.stringify(value)}: ${said}`)
    t.notMatch(said, /pw/, `${JSON.stringify(value)}: no password in the message`)
  }
})

t.test('redact masks a given secret and any URL password in free text', async t => {
  t.equal(
    redact('connect to redis://u:p@ss@h:1 failed', undefined),
    'connect to redis://u:***@h:1 failed',
    'a URL password, even one holding @',
  )
  t.equal(redact('AUTH hunter2 refused', 'hunter2'), 'AUTH *** refused', 'the secret itself, wherever it is')
  t.equal(redact('nothing secret', ''), 'nothing secret', 'an empty secret changes nothing')
})
