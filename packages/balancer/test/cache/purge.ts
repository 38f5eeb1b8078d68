import t from 'tap'
import { parsePurge } from '../../src/cache/purge.js'

t.test('parsePurge: a URL (percent-decoded), a prefix, everything; anything else is named', async t => {
  t.same(parsePurge(''), { all: true }, 'nothing: everything')
  t.same(parsePurge('?url=%2Fpage%3Fa%3D1%26b%3D2'), { url: '/page?a=1&b=2' }, 'url= is percent-decoded, query and all')
  t.same(parsePurge('prefix=/images/'), { prefix: '/images/' }, 'prefix=')
  t.equal(parsePurge('?url=/a&prefix=/b'), 'give one of url= or prefix=, once', 'both')
  t.equal(parsePurge('?url=/a&url=/b'), 'give one of url= or prefix=, once', 'twice')
  t.match(parsePurge('?path=/a'), /^unknown parameter "path"/, 'another parameter')
  t.match(parsePurge('?url=page'), /^url: "page" is not a path/, 'not a path')
})
