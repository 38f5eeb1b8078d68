import t from 'tap'
import { normalizeValue, variantKey, varyNames } from '../../src/cache/vary.js'

t.test('Vary names and the values variants compare', async t => {
  t.same(varyNames('Accept-Encoding, accept-encoding,  ,Accept'), ['accept-encoding', 'accept'], 'lower case, each once')
  t.same(varyNames(['A', 'b']), ['a', 'b'], 'repeated headers')
  t.same(varyNames(undefined), [], 'none')
  t.equal(normalizeValue(' GZIP ,  Deflate'), 'gzip,deflate', 'case and whitespace around commas')
  t.equal(normalizeValue(['a', 'B']), 'a,b', 'repeated headers joined')
  t.not(normalizeValue(undefined), normalizeValue(''), 'absent is not empty')
  t.equal(variantKey([], {}), '', 'no names: one variant')
  t.equal(variantKey(['a', 'b'], { a: 'X', b: 'y' }), 'x\ny', 'several names')
})
