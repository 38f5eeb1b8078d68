import { once } from 'node:events'
import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import type { Balancer } from '../../src/balancer.js'
import type { HealthCheckOptions } from '../../src/options.js'
import { HealthChecker } from '../../src/upstreams/health-check.js'
import { Pool } from '../../src/upstreams/pool.js'
import { Upstream, type HealthChange } from '../../src/upstreams/upstream.js'
import { closedPort, fetchText, startBalancer, startRawUpstream, startUpstream } from '../fixtures/servers.js'

const defaults = { maxFails: 1, failTimeout: 10_000 }

const options = (over: Partial<HealthCheckOptions> = {}): HealthCheckOptions => ({
  path: '/healthz',
  interval: 50,
  timeout: 200,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  status: [200, 399],
  ...over,
})

const upstream = (spec: string): Upstream => {
  const [host, port] = spec.split(':')
  return new Upstream({ host: host as string, port: Number(port) }, defaults)
}

/** The flips a checker reports, awaitable one at a time, each with when it came. */
function flips(): { report: (change: HealthChange) => void; all: HealthChange[]; next(): Promise<{ change: HealthChange; at: number }> } {
  const queue: { change: HealthChange; at: number }[] = []
  const waiting: ((flip: { change: HealthChange; at: number }) => void)[] = []
  const all: HealthChange[] = []
  return {
    all,
    report(change) {
      all.push(change)
      const flip = { change, at: performance.now() }
      const wake = waiting.shift()
      if (wake) wake(flip)
      else queue.push(flip)
    },
    next() {
      const flip = queue.shift()
      return flip ? Promise.resolve(flip) : new Promise(resolve => waiting.push(resolve))
    },
  }
}

/**
 * An upstream whose /healthz answers the statuses of `script` in turn, then `status` (which a
 * test may change). `served` lists what it answered; `until(n)` resolves once it answered n.
 * Any other path answers 200 with the upstream's name, as the balancer's traffic.
 */
async function healthEndpoint(t: Test, name: string, script: number[] = []) {
  const waiting: { n: number; resolve: () => void }[] = []
  const state = {
    status: 200,
    served: [] as number[],
    traffic: 0,
    until(n: number): Promise<void> {
      return state.served.length >= n ? Promise.resolve() : new Promise(resolve => waiting.push({ n, resolve }))
    },
  }
  const server = await startUpstream(t, name, (req, res) => {
    if (req.url !== '/healthz') {
      state.traffic++
      res.end(`hello from ${name}\n`)
      return
    }
    const status = script.shift() ?? state.status
    state.served.push(status)
    for (const w of waiting.filter(w => state.served.length >= w.n)) {
      waiting.splice(waiting.indexOf(w), 1)
      w.resolve()
    }
    res.statusCode = status
    res.end(`status ${status}\n`)
  })
  return Object.assign(state, { server, upstream: upstream(server.spec) })
}

/** A checker stopped at teardown at the latest. */
function checker(t: Test, pool: Pool, over: Partial<HealthCheckOptions>, report: (change: HealthChange) => void): HealthChecker {
  const c = new HealthChecker(pool, options(over), report)
  t.teardown(() => c.stop())
  return c
}

t.test('an upstream goes down after exactly unhealthyThreshold failures and up after healthyThreshold passes', async t => {
  // fall 3, rise 2: the lone 200 and the lone 503 reset the opposite count.
  const e = await healthEndpoint(t, 'e', [503, 503, 200, 503, 503, 503, 200, 503, 200, 200])
  const f = flips()
  const c = checker(t, new Pool([e.upstream]), { interval: 20, unhealthyThreshold: 3, healthyThreshold: 2 }, f.report)
  c.start()
  const down = await f.next()
  // Read right after the await: a flip is reported synchronously as its check ends, and no
  // check of the same upstream starts before, so `served` cannot have moved on.
  t.equal(e.served.length, 6, 'down at the 6th check: the first three consecutive failures')
  t.equal(down.change.upstream, e.upstream, 'the flip names the upstream')
  t.equal(down.change.up, false, 'it is a down flip')
  t.equal(down.change.reason, 'active check failed 3 times: GET /healthz -> 503', 'with the count and the last failure')
  t.equal(e.upstream.healthy, false, 'the upstream is marked down')
  const up = await f.next()
  t.equal(e.served.length, 10, 'up at the 10th check: the first two consecutive passes')
  t.same(
    { up: up.change.up, reason: up.change.reason },
    { up: true, reason: 'active check passed 2 times: GET /healthz -> 200' },
    'an up flip, with reason',
  )
  t.equal(e.upstream.healthy, true, 'the upstream is marked up')
  await e.until(14)
  t.equal(f.all.length, 2, 'each flip was reported once, however many checks agree after it')
  const [first] = e.server.seen
  t.same(
    first && {
      method: first.method,
      url: first.url,
      host: first.headers.host,
      ua: first.headers['user-agent'],
      connection: first.headers.connection,
    },
    { method: 'GET', url: '/healthz', host: e.upstream.id, ua: 'switchyard-health-check', connection: 'close' },
    'a check is GET path with Host host:port, its own User-Agent and Connection: close',
  )
  c.stop()
})

t.test('a failing upstream goes down, and a recovered one comes up, at the thresholds, a round apart', async t => {
  const interval = 100
  const e = await healthEndpoint(t, 'e')
  const f = flips()
  const c = checker(t, new Pool([e.upstream]), { interval, timeout: 200, unhealthyThreshold: 3, healthyThreshold: 2 }, f.report)
  c.start()
  await e.until(2)
  e.status = 503
  const failed = performance.now()
  const down = await f.next()
  t.equal(down.change.up, false, 'down')
  // The status is read as each check arrives: a check already on its way may still pass.
  // A flip is reported as its check ends, before the next one starts, so `served` is exact.
  t.equal(e.served.filter(s => s === 503).length, 3, 'at the third failing check: unhealthyThreshold')
  // Timers never fire early, so this holds however slow the machine: checks a round apart.
  t.ok(down.at - failed >= 2 * interval - 10, `not before three rounds could run (${Math.round(down.at - failed)} ms)`)
  const failing = e.served.length
  e.status = 200
  const recovered = performance.now()
  const up = await f.next()
  t.equal(up.change.up, true, 'up')
  t.same(e.served.slice(failing), [200, 200], 'at the second passing check after the recovery: healthyThreshold')
  t.ok(up.at - recovered >= interval - 10, `not before two rounds could run (${Math.round(up.at - recovered)} ms)`)
  c.stop()
})

t.test('a status outside the range fails; both ends of the range pass', async t => {
  // Each case answers its status, then 503: with fall 1 a failing status takes the upstream
  // down at the first check, a passing one only at the second.
  const cases: [number, boolean][] = [
    [203, false],
    [204, true],
    [250, true],
    [302, true],
    [303, false],
    [500, false],
  ]
  for (const [status, passes] of cases) {
    const e = await healthEndpoint(t, `s${status}`, [status])
    e.status = 503
    const f = flips()
    const c = checker(t, new Pool([e.upstream]), { status: [204, 302] }, f.report)
    c.start()
    const down = await f.next()
    t.equal(e.served.length, passes ? 2 : 1, `${status} ${passes ? 'passes' : 'fails'} in 204-302`)
    t.equal(
      down.change.reason,
      `active check failed 1 time: GET /healthz -> ${passes ? 503 : status}`,
      `${status}: the reason names the failing status`,
    )
    c.stop()
  }
})

t.test('no complete response within the timeout fails, and a check still out is not repeated', async t => {
  const silent = await startRawUpstream(t, () => {})
  const stall = await startRawUpstream(t, socket => void socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart'))
  for (const [name, raw] of [
    ['no answer', silent],
    ['a stalled body', stall],
  ] as const) {
    const u = upstream(raw.spec)
    const f = flips()
    const c = checker(t, new Pool([u]), { interval: 50, timeout: 200 }, f.report)
    const connection = once(raw.server, 'connection') as Promise<[Socket]>
    const started = performance.now()
    c.start()
    const [socket] = await connection
    const closed = once(socket, 'close')
    const down = await f.next()
    const took = down.at - started
    t.equal(down.change.reason, 'active check failed 1 time: GET /healthz -> timed out after 200ms', `${name}: fails as a timeout`)
    t.ok(took >= 195, `${name}: not before the timeout (${Math.round(took)} ms)`)
    t.equal(raw.connections, 1, `${name}: the three rounds during the check did not start another`)
    await closed
    t.pass(`${name}: the timed-out connection was closed`)
    c.stop()
  }
})

t.test('connection faults fail: refused, reset, a cut body, a malformed response', async t => {
  const reset = await startRawUpstream(t, socket => socket.resetAndDestroy())
  // A clean close mid-body: Node reports it on the response only, not on the request.
  const cut = await startRawUpstream(t, socket => void socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart'))
  const garbage = await startRawUpstream(t, socket => void socket.end('nonsense\r\n\r\n'))
  const cases: [string, string, string][] = [
    ['refused', await closedPort(), 'ECONNREFUSED'],
    ['reset', reset.spec, 'ECONNRESET'],
    ['cut body', cut.spec, 'ECONNRESET'],
    ['malformed', garbage.spec, 'HPE_INVALID_CONSTANT'],
  ]
  for (const [name, spec, code] of cases) {
    const u = upstream(spec)
    const f = flips()
    const c = checker(t, new Pool([u]), {}, f.report)
    c.start()
    const down = await f.next()
    t.equal(down.change.reason, `active check failed 1 time: GET /healthz -> ${code}`, `${name}: fails with ${code}`)
    t.has(c.lastResult(u.id), { ok: false, detail: `GET /healthz -> ${code}` }, `${name}: kept as the last result`)
    c.stop()
  }
})

t.test('stop() ends the rounds and the check in flight, and start() resumes', async t => {
  const e = await healthEndpoint(t, 'e')
  const silent = await startRawUpstream(t, () => {})
  const hanging = upstream(silent.spec)
  const f = flips()
  const c = checker(t, new Pool([e.upstream, hanging]), { interval: 30, timeout: 10_000 }, f.report)
  const connection = once(silent.server, 'connection') as Promise<[Socket]>
  c.start()
  c.start()
  const [socket] = await connection
  const closed = once(socket, 'close')
  await e.until(3)
  const stopped = performance.now()
  c.stop()
  c.stop()
  const served = e.served.length
  await closed
  t.ok(performance.now() - stopped < 5000, 'the check in flight was aborted, not left to its 10 s timeout')
  t.equal(c.lastResult(hanging.id), undefined, 'an aborted check is no verdict')
  // A clock for "rounds that would have run": a checker with the same interval still going.
  const w = await healthEndpoint(t, 'witness')
  checker(t, new Pool([w.upstream]), { interval: 30 }, () => {}).start()
  await w.until(5)
  t.equal(e.served.length, served, 'no check after stop() while another checker ran five rounds, though start() was called twice')
  t.equal(silent.connections, 1, 'and the silent upstream saw one connection')
  t.equal(f.all.length, 0, 'nothing was reported')
  c.start()
  await e.until(served + 1)
  t.pass('start() after stop() checks again')
  c.stop()
})

t.test('after stop() no timer or socket of the checker keeps the event loop alive', async t => {
  const silent = await startRawUpstream(t, () => {})
  const c = checker(t, new Pool([upstream(silent.spec)]), { interval: 30, timeout: 10_000 }, () => {})
  // getActiveResourcesInfo() lists what keeps the loop alive; earlier tests' servers may still
  // be closing, so only a count that grew would be the checker's.
  const held = (): { TCPSocketWrap: number; Timeout: number } => {
    const counts = { TCPSocketWrap: 0, Timeout: 0 }
    for (const type of process.getActiveResourcesInfo()) if (type === 'TCPSocketWrap' || type === 'Timeout') counts[type]++
    return counts
  }
  const before = held()
  const connection = once(silent.server, 'connection') as Promise<[Socket]>
  c.start()
  const [socket] = await connection
  const closed = once(socket, 'close')
  t.ok(held().TCPSocketWrap > before.TCPSocketWrap, 'a check in flight holds its socket (the probe works)')
  c.stop()
  await closed
  await new Promise(resolve => setImmediate(resolve))
  const after = held()
  t.ok(after.TCPSocketWrap <= before.TCPSocketWrap, `no socket left after stop() (${after.TCPSocketWrap} vs ${before.TCPSocketWrap})`)
  t.ok(after.Timeout <= before.Timeout, `no ref'd timer left (${after.Timeout} vs ${before.Timeout})`)
})

t.test('a replaced upstreams array: a new upstream is checked from the next round, a removed one no more', async t => {
  const a = await healthEndpoint(t, 'a')
  const b = await healthEndpoint(t, 'b')
  const added = await healthEndpoint(t, 'added')
  added.status = 503
  const silent = await startRawUpstream(t, () => {})
  const hanging = upstream(silent.spec)
  const pool = new Pool([a.upstream, b.upstream, hanging])
  const f = flips()
  const c = checker(t, pool, { interval: 30, timeout: 10_000 }, f.report)
  const connection = once(silent.server, 'connection') as Promise<[Socket]>
  c.start()
  const [socket] = await connection
  const closed = once(socket, 'close')
  await b.until(2)
  t.ok(c.lastResult(b.upstream.id)?.ok, 'b has a passing result while in the pool')
  // As on SIGHUP: a kept, b and the hanging one removed, one added.
  pool.upstreams = [a.upstream, added.upstream]
  const replaced = performance.now()
  const down = await f.next()
  t.equal(down.change.upstream, added.upstream, 'the added upstream was checked (and found failing)')
  t.same(added.served, [503], 'at its first check')
  t.has(c.lastResult(added.upstream.id), { ok: false, detail: 'GET /healthz -> 503' }, 'its result is kept')
  await closed
  t.ok(performance.now() - replaced < 5000, "the removed upstream's check in flight was aborted, not left to its 10 s timeout")
  const bServed = b.served.length
  const aServed = a.served.length
  // The kept upstream's checks are the clock: five more rounds ran.
  await a.until(aServed + 5)
  t.equal(b.served.length, bServed, 'the removed upstream is no longer checked, while the kept one was five times more')
  t.equal(c.lastResult(b.upstream.id), undefined, "the removed upstream's state was dropped")
  t.equal(c.lastResult(hanging.id), undefined, 'so was the hanging one')
  t.equal(f.all.length, 1, 'only the added upstream flipped')
  c.stop()
})

t.test('lastResult() keeps the last verdict per upstream id', async t => {
  const e = await healthEndpoint(t, 'e')
  e.upstream.setHealthy(false, 'as if checked before')
  const f = flips()
  const c = checker(t, new Pool([e.upstream]), { interval: 30 }, f.report)
  t.equal(c.lastResult(e.upstream.id), undefined, 'none before the first check')
  const before = Date.now()
  c.start()
  const up = await f.next()
  t.equal(up.change.reason, 'active check passed 1 time: GET /healthz -> 200', 'rise 1: up at the first pass')
  const pass = c.lastResult(e.upstream.id)
  t.has(pass, { ok: true, detail: 'GET /healthz -> 200' }, 'a pass')
  t.ok(pass && pass.at >= before && pass.at <= Date.now(), 'stamped with the wall-clock time it ended')
  e.status = 404
  await f.next()
  t.has(c.lastResult(e.upstream.id), { ok: false, detail: 'GET /healthz -> 404' }, 'then a failure')
  t.equal(c.lastResult('127.0.0.1:1'), undefined, 'an id not in the pool has none')
  c.stop()
})

t.test('options that cannot be checked with are refused', async t => {
  const pool = new Pool([])
  const cases: [string, Partial<HealthCheckOptions>, RegExp][] = [
    ['a path without a leading /', { path: 'healthz' }, /^health-path: "healthz" is not a path/],
    ['a path with a space', { path: '/health z' }, /^health-path: "\/health z" is not a path/],
    ['interval 0', { interval: 0 }, /^health-interval: 0 ms is not above 0$/],
    ['timeout NaN', { timeout: Number.NaN }, /^health-timeout: NaN ms is not above 0$/],
  ]
  for (const [name, over, message] of cases) {
    t.throws(() => new HealthChecker(pool, options(over), () => {}), { name: 'ConfigError', code: 'SWITCHYARD_CONFIG', message }, name)
  }
  t.doesNotThrow(() => new HealthChecker(pool, options({ path: '/status?full=1' }), () => {}), 'a path with a query is fine')
})

t.test('end to end: a backend failing its health check gets no traffic until it recovers', async t => {
  const a = await healthEndpoint(t, 'a')
  const b = await healthEndpoint(t, 'b')
  const { balancer, port } = await startBalancer(t, [a.server.spec, b.server.spec])
  // The balancer does not own a checker yet: this one works on its pool as the balancer's will.
  const f = flips()
  const c = checker(t, balancer.pool, { interval: 50, unhealthyThreshold: 2, healthyThreshold: 2 }, f.report)
  c.start()
  const servedBy = async (n: number): Promise<string[]> => {
    const names: string[] = []
    for (let i = 0; i < n; i++) names.push(String((await fetchText(port)).headers['x-served-by']))
    return names.sort()
  }
  t.same(await servedBy(4), ['a', 'a', 'b', 'b'], 'both backends take traffic while healthy')
  b.status = 503
  const down = await f.next()
  t.equal(down.change.upstream.id, b.server.spec, 'b was taken down by its health check')
  const bTraffic = b.traffic
  t.same(await servedBy(6), ['a', 'a', 'a', 'a', 'a', 'a'], 'all traffic goes to a')
  t.equal(b.traffic, bTraffic, 'b received no request but health checks')
  b.status = 200
  const up = await f.next()
  t.equal(up.change.upstream.id, b.server.spec, 'b came back')
  t.same(await servedBy(4), ['a', 'a', 'b', 'b'], 'and takes its share again')
  c.stop()
})

/** The next health change of `balancer` that `match` accepts: every change, flip or not, is emitted. */
function nextChange(balancer: Balancer, match: (c: HealthChange) => boolean): Promise<HealthChange> {
  return new Promise(resolve => {
    const listener = (c: HealthChange): void => {
      if (!match(c)) return
      balancer.off('health', listener)
      resolve(c)
    }
    balancer.on('health', listener)
  })
}

t.test('passive and active health both see one outage: one "marked down" line, one "up again" line', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const health = options({ interval: 30, healthyThreshold: 2, unhealthyThreshold: 2 })
  const { balancer, port, logs } = await startBalancer(t, [a.spec, b.spec], { health, failTimeout: 60_000 })
  const changes: HealthChange[] = []
  balancer.on('health', (c: HealthChange) => changes.push(c))
  const checker = balancer.upstreams.checker as HealthChecker
  // Passive health first, for a fixed order: the checks wait until a request has failed.
  checker.stop()
  await a.close()
  t.equal((await fetchText(port)).body, 'hello from b\n', 'refused by a, served by b')
  const downByChecks = nextChange(balancer, c => c.source === 'active' && !c.up)
  checker.start()
  await downByChecks
  t.equal(
    balancer.pool.upstreams[0]?.lastChange?.reason,
    'active check failed 2 times: GET /healthz -> ECONNREFUSED',
    "the checks' reason becomes the dashboard's why",
  )
  const back = nextChange(balancer, c => c.flipped && c.up)
  await startUpstream(t, 'a', undefined, a.port)
  await back
  t.same(
    logs,
    [
      `upstream ${a.spec} marked down: 1 failure(s) in 60s, last: ECONNREFUSED; skipped for 60s`,
      `upstream ${a.spec} is up again: active check passed 2 times: GET /healthz -> 200`,
    ],
    'one line down, with the first reason, and one up',
  )
  t.same(
    changes.map(c => [c.source, c.up, c.flipped]),
    [
      ['passive', false, true],
      ['active', false, false],
      ['passive', true, false],
      ['active', true, true],
    ],
    'every change is passed on (to the other workers); two of them flip availability',
  )
  const servedBy = [(await fetchText(port)).body, (await fetchText(port)).body].sort()
  t.same(servedBy, ['hello from a\n', 'hello from b\n'], 'a takes its share again, long before the 60 s fail_timeout')
})

t.test('a passing check lifts a passive mark-down at once, if it started after the failure', async t => {
  // a resets /boom after reading it, and holds the first check it gets until told.
  let hold: ((res: ServerResponse) => void) | undefined
  let checks = 0
  const held = new Promise<ServerResponse>(resolve => (hold = resolve))
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/boom') return void req.socket.destroy()
    if (req.url !== '/healthz') return void res.end('hello from a\n')
    checks++
    const h = hold
    hold = undefined
    if (h) h(res)
    else res.end('ok')
  })
  const b = await startUpstream(t, 'b')
  const health = options({ interval: 30, timeout: 10_000, unhealthyThreshold: 3 })
  const { balancer, port, logs } = await startBalancer(t, [a.spec, b.spec], { health, failTimeout: 60_000 })
  const check = await held
  const heldIs = checks
  t.equal((await fetchText(port, { path: '/boom' })).body, 'hello from b\n', 'a reset the request; it was retried on b')
  t.same(logs, [`upstream ${a.spec} marked down: 1 failure(s) in 60s, last: ECONNRESET; skipped for 60s`], 'a is out for 60 s')
  let liftedAt = 0
  // Read as the change is reported: no check of a starts before the one that lifted it ends.
  const lifted = nextChange(balancer, c => c.source === 'passive' && c.up).then(c => {
    liftedAt = checks
    return c
  })
  check.end('ok')
  const change = await lifted
  t.equal(liftedAt, heldIs + 1, 'not by the check under way when the request failed, but by the next one')
  t.same([change.flipped, change.reason], [true, 'active check passed: GET /healthz -> 200'], 'a flip up, with the check as its reason')
  t.equal(logs[1], `upstream ${a.spec} is up again: active check passed: GET /healthz -> 200`, 'logged once')
  const servedBy = [(await fetchText(port)).body, (await fetchText(port)).body].sort()
  t.same(servedBy, ['hello from a\n', 'hello from b\n'], 'a takes traffic again')
  t.equal(logs.length, 2, 'and nothing else was logged')
})

t.test('maint stops the checks: one out when it began is cancelled and counts neither way; none start while it lasts', async t => {
  const silent = await startRawUpstream(t, () => {})
  const idle = await startRawUpstream(t, () => {})
  const out = upstream(silent.spec)
  const never = upstream(idle.spec)
  never.adminState = 'maint'
  const f = flips()
  const c = checker(t, new Pool([out, never]), { interval: 50, timeout: 60_000 }, f.report)
  const connection = once(silent.server, 'connection') as Promise<[Socket]>
  c.start()
  const [socket] = await connection
  out.adminState = 'maint'
  // The next round sees maint and cancels the check out: its connection closes.
  await once(socket, 'close')
  t.pass('the check out when maint began was cancelled')
  t.equal(silent.connections, 1, 'and no other started')
  t.equal(idle.connections, 0, 'an upstream in maint from the start is never checked')
  t.equal(f.all.length, 0, 'no flip either way')
})
