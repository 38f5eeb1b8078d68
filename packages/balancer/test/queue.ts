import t from 'tap'
import { WaitQueue } from '../src/index.js'

t.test('first come, first served, bounded, with a timeout', async t => {
  const q = new WaitQueue(2, 10_000)
  const woken: string[] = []
  const w1 = q.wait(() => woken.push('1'), () => woken.push('1 timed out'))
  q.wait(() => woken.push('2'), () => woken.push('2 timed out'))
  t.equal(q.wait(() => {}, () => {}), undefined, 'full: a third is refused')
  t.ok(q.wait(() => woken.push('0'), () => {}, true), 'a woken waiter going back in is let in at the front, even when full')
  t.equal(q.length, 3, 'three waiting')
  q.release()
  q.release()
  t.same(woken, ['0', '1'], 'released in order, front first')
  q.cancel(w1 as NonNullable<typeof w1>)
  t.equal(q.length, 1, 'cancelling one that already left changes nothing')
  q.release()
  q.release()
  t.same(woken, ['0', '1', '2'], 'releasing an empty queue does nothing')
})

t.test('a waiter that waits too long is told so and removed', async t => {
  const q = new WaitQueue(5, 30)
  const timedOut = new Promise<void>(resolve => q.wait(() => {}, resolve))
  await timedOut
  t.equal(q.length, 0, 'removed after its timeout')
})
