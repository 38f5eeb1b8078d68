import t from 'tap'
import { WaitQueue } from '../../src/select/queue.js'

t.test('first come, first served, bounded; a waiter that cannot use a slot keeps its place', async t => {
  const q = new WaitQueue(3, 10_000)
  const offered: string[] = []
  let oneCanGo = false
  const w1 = q.wait(
    () => (offered.push('1'), oneCanGo),
    () => offered.push('1 timed out'),
  )
  q.wait(
    () => (offered.push('2'), true),
    () => offered.push('2 timed out'),
  )
  q.wait(
    () => (offered.push('3'), true),
    () => offered.push('3 timed out'),
  )
  t.equal(
    q.wait(
      () => true,
      () => {},
    ),
    undefined,
    'full: a fourth is refused',
  )
  q.release()
  t.same(offered, ['1', '2'], 'the first declined the slot, so the second took it')
  t.equal(q.length, 2, 'the first is still waiting, at the front')
  oneCanGo = true
  q.release()
  t.same(offered, ['1', '2', '1'], 'the next slot goes to the first again')
  q.cancel(w1 as NonNullable<typeof w1>)
  t.equal(q.length, 1, 'cancelling one that already left changes nothing')
  q.release()
  q.release()
  t.same(offered, ['1', '2', '1', '3'], 'releasing an empty queue does nothing')
})

t.test('a waiter that waits too long is told so and removed; declining a slot does not restart its clock', async t => {
  const q = new WaitQueue(5, 60)
  const events: string[] = []
  const timedOut = new Promise<void>(resolve =>
    q.wait(
      () => (events.push('declined at 30 ms'), false),
      () => (events.push('timed out'), resolve()),
    ),
  )
  setTimeout(() => q.release(), 30)
  // Where a clock restarted by the decline would run out: 30 + 60 ms after queueing. Timers
  // fire in the order they are due however late the loop runs, so no measured time is needed.
  const restarted = new Promise<void>(resolve => setTimeout(() => (events.push('90 ms'), resolve()), 90))
  await Promise.all([timedOut, restarted])
  t.same(events, ['declined at 30 ms', 'timed out', '90 ms'], 'timed out 60 ms after queueing, though offered a slot at 30 ms')
  t.equal(q.length, 0, 'removed after its timeout')
})
