import type { IncomingMessage } from 'node:http'
import t from 'tap'
import type { HashKey } from '../../src/options.js'
import { HashPolicy, keyOf } from '../../src/select/hash.js'
import { RoundRobin } from '../../src/select/round-robin.js'
import { Pool } from '../../src/upstreams/pool.js'
import { Upstream } from '../../src/upstreams/upstream.js'

const defaults = { maxFails: 1, failTimeout: 60_000 }

function fakeReq(url: string, headers: Record<string, string | string[]> = {}, ip = '10.0.0.1'): IncomingMessage {
  // Only url, headers and socket.remoteAddress are read.
  return { url, headers, socket: { remoteAddress: ip } } as unknown as IncomingMessage
}

function pool(n: number): Pool {
  return new Pool(Array.from({ length: n }, (_, i) => new Upstream({ host: `10.0.0.${i + 1}`, port: 80 }, defaults)))
}

t.test('the key of a request, by kind', async t => {
  const req = fakeReq('/a/b?user=7&x=1', { 'x-user': 'ann', cookie: 'a=1; SID=s42 ; b', 'set-cookie': ['p', 'q'] })
  const cases: [HashKey, string | undefined][] = [
    [{ kind: 'ip' }, '10.0.0.1'],
    [{ kind: 'path' }, '/a/b'],
    [{ kind: 'header', name: 'x-user' }, 'ann'],
    [{ kind: 'header', name: 'set-cookie' }, 'p,q'],
    [{ kind: 'header', name: 'x-none' }, undefined],
    [{ kind: 'cookie', name: 'SID' }, 's42'],
    [{ kind: 'cookie', name: 'none' }, undefined],
    [{ kind: 'query', name: 'user' }, '7'],
    [{ kind: 'query', name: 'none' }, undefined],
  ]
  for (const [key, want] of cases) t.equal(keyOf(key, req), want, JSON.stringify(key))
  t.equal(keyOf({ kind: 'path' }, fakeReq('/plain')), '/plain', 'a path without a query')
  t.equal(keyOf({ kind: 'query', name: 'user' }, fakeReq('/plain')), undefined, 'no query at all')
})

t.test('rendezvous hashing: stable, even, and moves only what it must', async t => {
  const p = pool(5)
  const policy = new HashPolicy({ kind: 'header', name: 'x-user' }, new RoundRobin())
  const none = new Set<Upstream>()
  const place = (users: string[], tried: ReadonlySet<Upstream> = none) =>
    new Map(users.map(u => [u, policy.select(p, fakeReq('/', { 'x-user': u }), tried)?.id]))
  const users = Array.from({ length: 5000 }, (_, i) => `user-${i}`)
  const before = place(users)
  t.same(place(users), before, 'the same key always lands on the same upstream')
  const counts = new Map<string, number>()
  for (const id of before.values()) counts.set(id as string, (counts.get(id as string) ?? 0) + 1)
  for (const [id, n] of counts) t.ok(Math.abs(n / 5000 - 0.2) <= 0.03, `${id} holds ${((n / 5000) * 100).toFixed(1)}% of keys (≈20%)`)

  const gone = p.upstreams[2] as Upstream
  gone.setHealthy(false, 'test')
  const during = place(users)
  const moved = users.filter(u => during.get(u) !== before.get(u))
  t.ok(
    moved.every(u => before.get(u) === gone.id),
    'only the keys of the down upstream moved',
  )
  t.ok(Math.abs(moved.length / 5000 - 0.2) <= 0.03, `${((moved.length / 5000) * 100).toFixed(1)}% of keys remapped: about 1/N`)
  gone.setHealthy(true, 'test')
  t.same(place(users), before, 'they return when it comes back')

  const retried = place(['user-1'], new Set(p.upstreams.filter(u => u.id === before.get('user-1'))))
  t.not(retried.get('user-1'), before.get('user-1'), 'a retry goes to the next choice')
})

t.test('weights skew the share; a request without the key falls back to round-robin', async t => {
  const p = new Pool([new Upstream({ host: 'a', port: 1, weight: 3 }, defaults), new Upstream({ host: 'b', port: 1 }, defaults)])
  const policy = new HashPolicy({ kind: 'cookie', name: 'sid' }, new RoundRobin())
  let a = 0
  for (let i = 0; i < 4000; i++) if (policy.select(p, fakeReq('/', { cookie: `sid=${i}` }), new Set())?.host === 'a') a++
  t.ok(Math.abs(a / 4000 - 0.75) <= 0.03, `weight 3:1 gives a ${((a / 4000) * 100).toFixed(1)}% (≈75%)`)
  const rr = Array.from({ length: 4 }, () => policy.select(p, fakeReq('/'), new Set())?.host)
  t.same(rr, ['a', 'a', 'b', 'a'], 'no cookie: smooth weighted round-robin')
})
