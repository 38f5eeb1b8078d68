import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { Pool, RoundRobin, Upstream } from '../src/index.js'

const defaults = { maxFails: 1, failTimeout: 60_000 }
// Policies that only read the pool never look at the request.
const req = {} as IncomingMessage

function pool(n: number): Pool {
  return new Pool(Array.from({ length: n }, (_, i) => new Upstream({ host: String.fromCharCode(97 + i), port: 1 }, defaults)))
}

function picks(p: Pool, n: number, tried = new Set<Upstream>()): string[] {
  const rr = new RoundRobin()
  return Array.from({ length: n }, () => rr.select(p, req, tried)?.host ?? '-')
}

t.test('round-robin: exact sequences', async t => {
  const table: [string, number, string[]][] = [
    ['one upstream', 1, ['a', 'a', 'a']],
    ['two alternate strictly', 2, ['a', 'b', 'a', 'b', 'a', 'b']],
    ['three in declared order', 3, ['a', 'b', 'c', 'a', 'b', 'c']],
  ]
  for (const [name, n, want] of table) t.same(picks(pool(n), want.length), want, name)
})

t.test('round-robin skips upstreams that are down or already tried', async t => {
  const p = pool(3)
  p.upstreams[1]?.recordFailure('ECONNREFUSED', performance.now())
  t.same(picks(p, 4), ['a', 'c', 'a', 'c'], 'b is down: a and c alternate')
  t.same(picks(p, 2, new Set([p.upstreams[0] as Upstream])), ['c', 'c'], 'a tried: only c is left')
  t.same(picks(p, 1, new Set(p.upstreams)), ['-'], 'all tried: nothing')
})
