// The recorder: each finished request counted in all, on its upstream or as the balancer's own, and one access entry.
import { createServer } from 'node:http'
import t from 'tap'
import type { AccessEntry } from '../../src/observe/access-log.js'
import { RequestRecorder } from '../../src/observe/recorder.js'
import { Upstream } from '../../src/upstreams/upstream.js'
import { fetchText, serve } from '../fixtures/servers.js'

t.test('record(): totals, the upstream or the balancer’s own answers, and the access entry', async t => {
  const recorder = new RequestRecorder()
  const entries: AccessEntry[] = []
  const u = new Upstream({ host: '127.0.0.1', port: 5000 }, { maxFails: 1, failTimeout: 1000 })
  recorder.accessLog = { write: e => entries.push(e), flush: () => {}, reopen: () => {}, close: () => {} }
  const port = await serve(
    t,
    createServer((req, res) => {
      res.end()
      const upstream = req.url === '/routed' ? u : undefined
      recorder.record(req, upstream === undefined ? 503 : 200, upstream, {
        client: '10.0.0.1',
        time: 1_700_000_000_000,
        start: performance.now(),
        upstreamMs: upstream === undefined ? undefined : 2,
        bytes: 5,
        retries: 1,
        cache: 'HIT',
      })
    }),
  )
  await fetchText(port, { path: '/routed' })
  await fetchText(port, { path: '/own', headers: { referer: 'http://r.example/', 'user-agent': 'ua/1' } })
  t.same(recorder.totals.byMethod.get('GET'), [0, 1, 0, 0, 1], 'both in the totals, by class')
  t.same(u.stats.byMethod.get('GET'), [0, 1, 0, 0, 0], 'the routed one on its upstream')
  t.same(recorder.unrouted.byMethod.get('GET'), [0, 0, 0, 0, 1], 'the other as the balancer’s own')
  t.equal(entries.length, 2, 'one entry per request')
  t.match(entries[0], { path: '/routed', status: 200, upstream: '127.0.0.1:5000', upstreamMs: 2 }, 'the routed one names its upstream')
  t.match(
    entries[1],
    {
      time: 1_700_000_000_000,
      client: '10.0.0.1',
      method: 'GET',
      path: '/own',
      httpVersion: '1.1',
      status: 503,
      bytes: 5,
      upstream: undefined,
      upstreamMs: undefined,
      retries: 1,
      cache: 'HIT',
      referer: 'http://r.example/',
      userAgent: 'ua/1',
    },
    'every field of the entry',
  )
  t.ok((entries[1]?.totalMs ?? -1) >= 0, 'with the time since the request came')
})
