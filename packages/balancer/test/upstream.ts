import t from 'tap'
import { Pool, Upstream } from '../src/index.js'

const defaults = { maxFails: 1, failTimeout: 10_000 }

t.test('ids are host:port, IPv6 in brackets', async t => {
  t.equal(new Upstream({ host: '127.0.0.1', port: 5000 }, defaults).id, '127.0.0.1:5000', 'IPv4')
  t.equal(new Upstream({ host: '::1', port: 5000 }, defaults).id, '[::1]:5000', 'IPv6')
})

t.test('passive health follows nginx max_fails / fail_timeout', async t => {
  const u = new Upstream({ host: 'h', port: 1, maxFails: 2, failTimeout: 1000 }, defaults)
  t.equal(u.recordFailure('ECONNREFUSED', 0), undefined, 'first of two failures: no flip')
  t.ok(u.passiveUp(1), 'still available')
  t.equal(u.recordFailure('ECONNREFUSED', 1500), undefined, 'a failure after fail_timeout starts a new count')
  const down = u.recordFailure('ECONNRESET', 1600)
  t.same(down && { up: down.up, reason: down.reason }, { up: false, reason: '2 failure(s) in 1s, last: ECONNRESET; skipped for 1s' }, 'second within the window: down, with reason')
  t.notOk(u.passiveUp(2599), 'skipped for fail_timeout')
  t.ok(u.passiveUp(2600), 'available again after it')
  t.equal(u.recordFailure('ECONNREFUSED', 2700), undefined, 'a failed trial keeps it down without a second log line')
  t.notOk(u.passiveUp(3000), 'and skips it again')
  const up = u.recordSuccess()
  t.same(up && { up: up.up, reason: up.reason }, { up: true, reason: 'a request succeeded' }, 'a success brings it up, once')
  t.equal(u.recordSuccess(), undefined, 'no second flip')
  t.ok(u.passiveUp(3001), 'available')
})

t.test('max_fails=0 never marks an upstream down', async t => {
  const u = new Upstream({ host: 'h', port: 1, maxFails: 0 }, defaults)
  for (let i = 0; i < 5; i++) t.equal(u.recordFailure('ECONNREFUSED', i), undefined, `failure ${i} ignored`)
  t.ok(u.passiveUp(5), 'still available')
})

t.test('a pool of one never marks its upstream down; a larger pool does', async t => {
  const lone = new Upstream({ host: 'a', port: 1 }, defaults)
  lone.recordFailure('ECONNREFUSED', 0)
  t.ok(new Pool([lone]).isAvailable(lone, 1), 'lone upstream stays available')
  const other = new Upstream({ host: 'b', port: 1 }, defaults)
  t.notOk(new Pool([lone, other]).isAvailable(lone, 1), 'in a pool of two it is skipped')
})
