import t from 'tap'
import { OTHER_KEY, RequestStats } from '../src/stats.js'

t.test('counts requests per method and path', async t => {
  const stats = new RequestStats()
  stats.count('GET', '/')
  stats.count('POST', '/echo')
  stats.count('GET', '/')
  t.same(stats.toJSON(), { 'GET /': 2, 'POST /echo': 1 }, 'one count per method and path')
  t.equal(stats.maxKeys, 1000, 'at most 1000 distinct keys by default')
  t.equal(JSON.stringify({ requests: stats }), '{"requests":{"GET /":2,"POST /echo":1}}', 'serializes as a plain object')
})

t.test('past maxKeys distinct keys, new ones are counted under "other"', async t => {
  const stats = new RequestStats(2)
  stats.count('GET', '/a')
  stats.count('GET', '/b')
  stats.count('GET', '/c')
  stats.count('PUT', '/d')
  stats.count('GET', '/a')
  t.same(stats.toJSON(), { 'GET /a': 2, 'GET /b': 1, [OTHER_KEY]: 2 }, 'known keys still count; new ones go to other')
})
