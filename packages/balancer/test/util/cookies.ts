import t from 'tap'
import { cookieValue } from '../../src/util/cookies.js'

t.test('a cookie by name from a Cookie header', async t => {
  t.equal(cookieValue('a=1; SID=s42 ; b', 'SID'), 's42', 'spaces around the pair are trimmed')
  t.equal(cookieValue('a=1; b=2', 'c'), undefined, 'no such cookie')
  t.equal(cookieValue(undefined, 'a'), undefined, 'no Cookie header')
  t.equal(cookieValue('=x; a=1', 'a'), '1', 'a pair without a name is skipped')
})
