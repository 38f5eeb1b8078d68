import t from 'tap'
import { performance } from 'node:perf_hooks'
import { Upstream, type HealthChange } from '../../src/upstreams/upstream.js'

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
  t.same(
    down && { up: down.up, reason: down.reason },
    { up: false, reason: '2 failure(s) in 1s, last: ECONNRESET; skipped for 1s' },
    'second within the window: down, with reason',
  )
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

t.test('one flip per change of availability, with the first reason; later reasons update the why', async t => {
  const u = new Upstream({ host: 'h', port: 1, failTimeout: 1000 }, defaults)
  const flip = (c: HealthChange | undefined) => c && [c.source, c.up, c.flipped]

  // Passive health sees the outage first, then the checks.
  t.same(flip(u.recordFailure('ECONNREFUSED', 100)), ['passive', false, true], 'a failed request takes it out: a flip')
  const first = u.lastChange?.reason
  t.equal(first, '1 failure(s) in 1s, last: ECONNREFUSED; skipped for 1s', 'the why is the first reason')
  t.same(
    flip(u.setHealthy(false, 'active check failed 3 times: GET /healthz -> ECONNREFUSED')),
    ['active', false, false],
    'the checks agree: a change, but no flip',
  )
  t.same(
    u.lastChange && [u.lastChange.up, u.lastChange.reason],
    [false, 'active check failed 3 times: GET /healthz -> ECONNREFUSED'],
    'the later reason becomes the why',
  )
  t.equal(u.checkPassed(50, 'active check passed: GET /healthz -> 200'), undefined, 'a check that started before the failure lifts nothing')
  t.same(
    flip(u.checkPassed(150, 'active check passed: GET /healthz -> 200')),
    ['passive', true, false],
    'one that started after lifts the passive mark-down, not yet a flip',
  )
  t.equal(
    u.lastChange?.reason,
    'active check failed 3 times: GET /healthz -> ECONNREFUSED',
    'the checks still have it out, and are the why',
  )
  t.ok(u.passiveUp(150), 'passive health lets it through again, long before fail_timeout')
  const before = performance.now()
  t.same(
    flip(u.setHealthy(true, 'active check passed 2 times: GET /healthz -> 200')),
    ['active', true, true],
    'the checks bring it back: the flip up',
  )
  t.same(
    u.lastChange && [u.lastChange.up, u.lastChange.reason],
    [true, 'active check passed 2 times: GET /healthz -> 200'],
    'with its reason',
  )
  t.ok(u.upSince >= before, 'and slow start counts from then')

  // The other order: the checks first, then another worker's failed request.
  t.same(
    flip(u.setHealthy(false, 'active check failed 3 times: GET /healthz -> 503')),
    ['active', false, true],
    'the checks take it out: a flip',
  )
  t.same(flip(u.applyPassive(false, 1000, 'seen by another worker', 500)), ['passive', false, false], 'a failure elsewhere too: no flip')
  t.equal(u.lastChange?.reason, 'seen by another worker', 'the why follows')
  t.same(
    flip(u.applyPassive(true, 0, 'a request succeeded elsewhere', 600)),
    ['passive', true, false],
    'passive health clears, the checks still have it out',
  )
  t.equal(u.lastChange?.reason, 'active check failed 3 times: GET /healthz -> 503', 'so theirs is the why again')
  t.same(flip(u.setHealthy(true, 'active check passed 2 times: GET /healthz -> 200')), ['active', true, true], 'one flip up')
})

t.test('a passing check clears no count of failures while the upstream is up', async t => {
  const u = new Upstream({ host: 'h', port: 1, maxFails: 2, failTimeout: 1000 }, defaults)
  t.equal(u.recordFailure('ECONNRESET', 0), undefined, 'one failure of two')
  t.equal(u.checkPassed(10, 'active check passed: GET /healthz -> 200'), undefined, 'a pass while up changes nothing')
  t.same(u.recordFailure('ECONNRESET', 20)?.flipped, true, 'so the second failure still takes it out: max_fails counts requests')
})
