import t, { type Test } from 'tap'
import { RedisUnavailableError } from '../../src/errors.js'
import { RedisLink, type RedisLinkOptions } from '../../src/redis/link.js'
import { parseRedisUrl } from '../../src/redis/url.js'
import { Lines } from '../fixtures/log.js'
import { needsRedis, startRedis } from '../fixtures/redis-server.js'
import { redisRelay } from '../fixtures/relay.js'

/** A link to `url` that logs into `lines`, closed at teardown. */
function link(t: Test, url: string, lines: Lines, options: Partial<RedisLinkOptions> = {}): RedisLink {
  const l = new RedisLink({
    target: parseRedisUrl(url, 'url'),
    log: lines.push,
    name: () => 'test',
    effect: 'the cache is bypassed',
    ...options,
  })
  t.teardown(() => l.close())
  return l
}

t.test('commands answer, and the first connection is logged once with the URL', needsRedis, async t => {
  const redis = await startRedis(t)
  const lines = new Lines()
  const l = link(t, redis.url, lines)
  t.equal(await l.run(c => c.set('k', 'v')), 'OK', 'SET answers OK')
  t.equal(await l.run(c => c.get('k')), 'v', 'GET reads it back')
  t.equal(l.up, true, 'Redis is up')
  await lines.waitFor(/connected/)
  t.same(lines.all, [`test: redis connected to ${redis.url}`], 'one line: where it connected')
  t.equal(await l.client(), await l.client(), 'one client, the same each time')
})

/**
 * A TCP relay to Redis on `port`, in this process, that can hold Redis's next answer: armed, it
 * keeps back what Redis sends until `release()`, which writes it to the link's socket at once.
 */
async function answerHoldingRelay(t: Test, port: number) {
  let armed = false
  let onHeld: () => void = () => {}
  const held = new Promise<void>(resolve => (onHeld = resolve))
  let release = (): void => {}
  const url = await redisRelay(t, port, () => ({
    toClient: (chunk, forward) => {
      if (!armed) return forward(chunk)
      armed = false
      release = () => forward(chunk)
      onHeld()
    },
  }))
  return { url, arm: () => void (armed = true), held, release: () => release() }
}

t.test('an answer that came while the event loop was stalled past the timeout is an answer, not a timeout', needsRedis, async t => {
  const redis = await startRedis(t)
  const relay = await answerHoldingRelay(t, redis.port)
  const lines = new Lines()
  const l = link(t, relay.url, lines, { timeout: 1000 })
  // Connected first, with no deadline on that: only the answer below is timed.
  await l.client()
  await lines.waitFor(/connected/)
  relay.arm()
  const answer = l.run(c => c.set('stalled', 'yes'))
  // Redis has answered; the relay holds the answer. Then, in one go: the answer is written to
  // the link's socket, and this thread blocks for 3 s, well past the 1 s deadline. When the
  // event loop runs again, the timer is due and the answer is in the socket, unread. (Waiting
  // for a turn of the loop instead raced node-redis, which writes a command from setImmediate:
  // in a loaded run the command went out after the stall, and the answer came too late.)
  await relay.held
  relay.release()
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000)
  t.equal(await answer, 'OK', 'the answer, not a timeout')
  t.equal(l.up, true, 'Redis is still up')
  t.notOk(
    lines.all.some(line => /redis down/.test(line)),
    'and was never marked down',
  )
})

t.test('SIGSTOP: a command unanswered within the timeout fails, once logged; SIGCONT: it comes back', needsRedis, async t => {
  const redis = await startRedis(t)
  const lines = new Lines()
  const l = link(t, redis.url, lines, { timeout: 300, probeInterval: 200 })
  await l.run(c => c.ping())
  redis.pause()
  t.teardown(() => redis.resume())
  await t.rejects(
    l.run(c => c.get('k')),
    RedisUnavailableError,
    'the first command fails after the timeout',
  )
  t.equal(l.up, false, 'Redis is down')
  await t.rejects(
    l.run(c => c.get('k')),
    RedisUnavailableError,
    'the next one fails without being sent',
  )
  await t.rejects(
    l.run(c => c.get('k')),
    RedisUnavailableError,
    'and the one after',
  )
  // A negative can only be checked over a window: long enough for a probe to start and time out.
  await new Promise(resolve => setTimeout(resolve, 800))
  t.same(
    lines.matching(/down/),
    ['test: redis down (no answer within 300 ms); the cache is bypassed'],
    'one down line for the outage, with its effect',
  )
  t.same(lines.matching(/again/), [], 'probes that time out while it is stopped log nothing')
  redis.resume()
  t.match(await lines.waitFor(/answering again/), /^test: redis answering again after \d+\.\ds$/, 'the probe finds it again')
  t.equal(await l.run(c => c.ping()), 'PONG', 'commands answer again')
  t.equal(lines.matching(/down/).length, 1, 'still one down line')
})

t.test('killed: down at once; restarted: up again by itself, with no command sent', needsRedis, async t => {
  const redis = await startRedis(t)
  const lines = new Lines()
  const l = link(t, redis.url, lines)
  await l.run(c => c.ping())
  await redis.kill()
  t.match(await lines.waitFor(/redis down/), /^test: redis down \(.+\); the cache is bypassed$/, 'the lost connection is a down line')
  await t.rejects(
    l.run(c => c.ping()),
    RedisUnavailableError,
    'commands fail while it is down',
  )
  await redis.restart()
  await lines.waitFor(/answering again/, 5000)
  t.equal(await l.run(c => c.ping()), 'PONG', 'answering again within 5 s of the restart')
  t.equal(lines.matching(/connected to/).length, 1, 'the reconnection is not a second "connected" line')
})

t.test('no Redis at start: one down line, no effect clause when none is given; close() ends it', needsRedis, async t => {
  const redis = await startRedis(t)
  await redis.kill()
  const lines = new Lines()
  const l = link(t, redis.url, lines, { effect: '' })
  await t.rejects(
    l.run(c => c.ping()),
    RedisUnavailableError,
    'the command fails',
  )
  t.match(lines.all, [/^test: redis down \([^)]+\)$/], 'one down line')
  await l.close()
  await l.close()
  t.pass('close() twice is harmless')
})

t.test('a password is never in a line, even when Redis refuses it', needsRedis, async t => {
  const password = 'pw-in-url-7f3a'
  const redis = await startRedis(t, { password })
  const good = new Lines()
  const ok = link(t, redis.url, good)
  t.equal(await ok.run(c => c.ping()), 'PONG', 'the right password connects')
  await good.waitFor(/connected/)
  t.same(good.all, [`test: redis connected to redis://:***@127.0.0.1:${redis.port}`], 'shown with the password masked')
  const bad = new Lines()
  const wrong = 'wrong-pw-9c1e'
  const refused = link(t, `redis://:${wrong}@127.0.0.1:${redis.port}`, bad)
  await t.rejects(
    refused.run(c => c.ping()),
    RedisUnavailableError,
    'a wrong password fails the command',
  )
  await bad.waitFor(/down/)
  t.match(bad.all.join('\n'), /WRONGPASS|NOAUTH|no answer/, 'the reason is there')
  t.notMatch(bad.all.join('\n') + good.all.join('\n'), new RegExp(`${password}|${wrong}`), 'neither password is')
})

t.test('defaults: no log, a plain name', needsRedis, async t => {
  const redis = await startRedis(t)
  const l = new RedisLink({ target: parseRedisUrl(redis.url, 'url') })
  t.teardown(() => l.close())
  t.equal(await l.run(c => c.ping()), 'PONG', 'works without options')
  await redis.kill()
  await t.rejects(
    l.run(c => c.ping()),
    RedisUnavailableError,
    'and fails without them',
  )
})
