import t from 'tap'
import { HitForMiss, Locks } from '../../src/cache/lock.js'

t.test('a fill: waiters told its outcome once, or timeout; the key is free again once it settles', async t => {
  const locks = new Locks()
  const fill = locks.acquire('k')
  t.equal(locks.get('k'), fill, 'held')
  const told: string[] = []
  fill.wait(o => told.push(`a:${o}`), 60_000)
  const stop = fill.wait(o => told.push(`b:${o}`), 60_000)
  const timedOut = new Promise<void>(resolve => fill.wait(o => (told.push(`c:${o}`), resolve()), 1))
  await timedOut
  stop()
  t.equal(fill.waiting, 1, 'one still waiting')
  fill.settle('stored')
  fill.settle('failed')
  t.same(told, ['c:timeout', 'a:stored'], 'the timed-out one once, the stopped one never, the other the outcome once')
  t.equal(fill.outcome, 'stored', 'the first outcome stands')
  t.equal(locks.get('k'), undefined, 'the key is free')
  const next = locks.acquire('k')
  fill.settle('failed')
  t.equal(locks.get('k'), next, 'an old fill settling again leaves a new one alone')
  locks.purge(key => key === 'k')
  t.ok(next.purged, 'a purge marks the fill running for its key')
})

t.test('hit-for-miss: remembered for its time, bounded, forgotten on purge', async t => {
  const h = new HitForMiss(1000, 2)
  h.add('a', 0)
  t.ok(h.has('a', 999), 'remembered within its time')
  t.notOk(h.has('a', 1000), 'forgotten after it')
  t.equal(h.size, 0, 'and dropped')
  h.add('a', 0)
  h.add('b', 0)
  h.add('a', 10)
  h.add('c', 0)
  t.notOk(h.has('b', 1), 'past the bound the oldest goes (a was added again, so b was oldest)')
  t.ok(h.has('a', 1) && h.has('c', 1), 'the others stay')
  h.delete('a')
  h.purge(k => k === 'c')
  t.equal(h.size, 0, 'delete and purge forget')
  t.notOk(h.has('zz', 0), 'never seen: no')
})
