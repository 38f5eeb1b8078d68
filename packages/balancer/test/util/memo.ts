import t from 'tap'
import { memoized } from '../../src/util/memo.js'

t.test('memoized: computed once per value it keeps, every time past its bound, and always right', async t => {
  const calls: string[] = []
  const length = memoized((value: string) => {
    calls.push(value)
    return value.length
  }, 2)
  t.same([length('a'), length('bb'), length('a'), length('bb')], [1, 2, 1, 2], 'the results')
  t.same(calls, ['a', 'bb'], 'each computed once while within the bound')
  t.same([length('ccc'), length('ccc')], [3, 3], 'a third value past the bound of two: still right')
  t.same(calls, ['a', 'bb', 'ccc', 'ccc'], 'computed each time, not kept')
  t.equal(length('a'), 1, 'and what was kept stays kept')
  t.equal(calls.length, 4, 'without computing it again')
})
