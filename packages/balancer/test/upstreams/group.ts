// An upstream group: configured and reloaded, its active checks started and stopped, its health news emitted and logged.
import { once } from 'node:events'
import t from 'tap'
import { UpstreamGroup } from '../../src/upstreams/group.js'
import type { HealthChange } from '../../src/upstreams/upstream.js'
import { closedPort, startUpstream } from '../fixtures/servers.js'

const health = {
  path: '/healthz',
  interval: 60_000,
  timeout: 1000,
  healthyThreshold: 1,
  unhealthyThreshold: 1,
  status: [200, 399] as const,
}
const specOf = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })

t.test('configure: the pool follows the list; a checker only with settings, a new one when they change', async t => {
  const group = new UpstreamGroup()
  t.same(group.pool.upstreams, [], 'empty until configured')
  group.configure({ upstreams: [specOf('127.0.0.1:1')] })
  t.equal(group.checker, undefined, 'no checks configured: no checker')
  t.equal(group.find('127.0.0.1:1'), group.pool.upstreams[0], 'find() by id')
  t.equal(group.find('127.0.0.1:2'), undefined, 'and undefined for an id not in the pool')
  group.configure({ upstreams: [specOf('127.0.0.1:1')], health })
  const checker = group.checker
  t.ok(checker, 'a checker once checks are configured')
  group.configure({ upstreams: [specOf('127.0.0.1:1'), specOf('127.0.0.1:2')], health })
  t.equal(group.checker, checker, 'the same settings keep the checker')
  group.configure({ upstreams: [specOf('127.0.0.1:1')], health: { ...health, interval: 30_000 } })
  t.not(group.checker, checker, 'new settings make a new one')
  group.configure({ upstreams: [specOf('127.0.0.1:1')] })
  t.equal(group.checker, undefined, 'and none once they are gone')
  const removed = group.pool.upstreams[0]
  if (removed !== undefined) removed.inFlight = 1
  group.configure({ upstreams: [specOf('127.0.0.1:3')] })
  t.same(group.retired, [removed], 'one removed with a request in flight is retired')
  if (removed !== undefined) removed.inFlight = 0
  t.same(group.retired, [], 'until its last request is done')
})

t.test('checks run between startChecks() and stopChecks(), across a reload that changes them', async t => {
  const up = await startUpstream(t, 'up')
  const group = new UpstreamGroup()
  group.configure({ upstreams: [specOf(up.spec)], health })
  group.startChecks()
  t.teardown(() => group.stopChecks())
  while (group.checker?.lastResult(up.spec) === undefined) await new Promise(resolve => setTimeout(resolve, 5))
  t.match(group.checker?.lastResult(up.spec), { ok: true, detail: 'GET /healthz -> 200' }, 'started: a check ran')
  group.configure({ upstreams: [specOf(up.spec)], health: { ...health, path: '/other' } })
  while (group.checker?.lastResult(up.spec) === undefined) await new Promise(resolve => setTimeout(resolve, 5))
  t.match(group.checker?.lastResult(up.spec), { detail: 'GET /other -> 200' }, 'the new checker started at once, since checks were on')
  group.stopChecks()
  group.configure({ upstreams: [specOf(up.spec)], health })
  await new Promise(resolve => setTimeout(resolve, 50))
  t.equal(group.checker?.lastResult(up.spec), undefined, 'stopped: a new checker waits for startChecks()')
})

t.test('report(): every change is emitted; a flip of availability is logged once', async t => {
  const dead = await closedPort()
  const lines: string[] = []
  const group = new UpstreamGroup()
  group.configure({ upstreams: [specOf(dead), specOf('127.0.0.1:2')], log: line => lines.push(line) })
  const changes: HealthChange[] = []
  group.on('health', (c: HealthChange) => changes.push(c))
  const u = group.pool.upstreams[0]
  group.report(u?.recordFailure('ECONNREFUSED'))
  group.report(u?.setHealthy(false, 'active check failed 1 time: GET /healthz -> ECONNREFUSED'))
  group.report(undefined)
  const up = once(group, 'health')
  group.report(u?.setHealthy(true, 'active check passed'))
  await up
  t.same(
    changes.map(c => [c.source, c.up, c.flipped]),
    [
      ['passive', false, true],
      ['active', false, false],
      ['active', true, false],
    ],
    'every change is emitted, flip or not',
  )
  t.same(lines, [`upstream ${dead} marked down: 1 failure(s) in 10s, last: ECONNREFUSED; skipped for 10s`], 'one line, for the flip')
})
