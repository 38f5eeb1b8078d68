import type { IncomingMessage } from 'node:http'
import t from 'tap'
import { First, LeastRequests, Pool, RandomTwo, RoundRobin, Upstream, createPolicy, type Policy, type UpstreamSpec } from '../../src/index.js'

const defaults = { maxFails: 1, failTimeout: 60_000 }
// The hash policy reads the client address (here none: it falls back to round-robin).
const req = { url: '/', headers: {}, socket: {} } as unknown as IncomingMessage

function pool(...specs: Partial<UpstreamSpec>[]): Pool {
  return new Pool(specs.map((s, i) => new Upstream({ host: String.fromCharCode(97 + i), port: 1, ...s }, defaults)))
}

function picks(policy: Policy, p: Pool, n: number, tried = new Set<Upstream>()): string[] {
  return Array.from({ length: n }, () => policy.select(p, req, tried)?.host ?? '-')
}

/** mulberry32: a seeded uniform source, so the random policy's test is repeatable. */
function seeded(seed: number): () => number {
  let a = seed
  return () => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('round-robin: exact sequences, as nginx smooth weighted round-robin', async t => {
  const table: [string, Partial<UpstreamSpec>[], string][] = [
    ['one upstream', [{}], 'aaa'],
    ['two alternate strictly', [{}, {}], 'ababab'],
    ['three in declared order', [{}, {}, {}], 'abcabc'],
    ['weights 5,1,1 are smooth, not bursty', [{ weight: 5 }, { weight: 1 }, { weight: 1 }], 'aabacaa' + 'aabacaa'],
    ['weights 3,1', [{ weight: 3 }, { weight: 1 }], 'aaba' + 'aaba'],
    ['weights 2,3', [{ weight: 2 }, { weight: 3 }], 'babab' + 'babab'],
  ]
  for (const [name, specs, want] of table) t.equal(picks(new RoundRobin(), pool(...specs), want.length).join(''), want, name)
})

t.test('every policy skips down, admin-down, full and tried upstreams', async t => {
  for (const name of ['round-robin', 'least-requests', 'random-two', 'first', 'hash'] as const) {
    const p = pool({}, {}, {}, { down: true }, { maxConns: 1 })
    const [a, b, c, , e] = p.upstreams as Upstream[]
    ;(e as Upstream).inFlight = 1
    b?.recordFailure('ECONNREFUSED', performance.now())
    const policy = createPolicy(name)
    t.equal(policy.name, name, `createPolicy('${name}')`)
    const seen = new Set(picks(policy, p, 30))
    t.ok(seen.size > 0 && [...seen].every(h => h === 'a' || h === 'c'), `${name}: only a or c are chosen (${[...seen]})`)
    t.same(picks(policy, p, 3, new Set([a as Upstream])), ['c', 'c', 'c'], `${name}: a tried, c is left`)
    t.same(picks(policy, p, 1, new Set([a as Upstream, c as Upstream])), ['-'], `${name}: nothing left`)
  }
})

t.test('backups are used only when no primary is available; full primaries keep them out', async t => {
  const p = pool({}, { backup: true }, { maxConns: 1 })
  const [a, , c] = p.upstreams as Upstream[]
  const rr = new RoundRobin()
  t.same(picks(rr, p, 4), ['a', 'c', 'a', 'c'], 'primaries only')
  ;(c as Upstream).inFlight = 1
  a?.recordFailure('ECONNREFUSED', performance.now())
  t.same(picks(rr, p, 2), ['-', '-'], 'a down and c full: nothing, the backup stays out')
  t.equal(p.tier(new Set(), performance.now()).length, 1, 'the tier is the full primary: the request waits for it')
  ;(c as Upstream).inFlight = 0
  c?.setHealthy(false, 'test')
  t.same(picks(rr, p, 2), ['b', 'b'], 'every primary down: the backup serves')
  t.same(picks(rr, p, 1, new Set([p.upstreams[1] as Upstream])), ['-'], 'the backup tried too: nothing')
})

t.test('least-requests: fewest in flight per weight, ties by weight, then round-robin', async t => {
  const p = pool({}, {}, {})
  const [a, b, c] = p.upstreams as Upstream[]
  const lr = new LeastRequests()
  t.same(picks(lr, p, 6), ['a', 'b', 'c', 'a', 'b', 'c'], 'an idle pool rotates')
  ;(a as Upstream).inFlight = 2
  ;(b as Upstream).inFlight = 1
  ;(c as Upstream).inFlight = 3
  t.same(picks(lr, p, 2), ['b', 'b'], 'fewest in flight wins')
  const w = pool({ weight: 1 }, { weight: 3 })
  t.same(picks(lr, w, 3), ['b', 'b', 'b'], 'a tie goes to the heavier upstream')
  ;(w.upstreams[1] as Upstream).inFlight = 3
  ;(w.upstreams[0] as Upstream).inFlight = 2
  t.same(picks(lr, w, 1), ['b'], '3 in flight at weight 3 is lighter than 2 at weight 1')
})

t.test('random-two: ratios over 10,000 picks within ±2%, and it prefers the less loaded', async t => {
  const table: [string, Partial<UpstreamSpec>[], number[]][] = [
    ['equal weights, idle', [{}, {}, {}, {}], [0.25, 0.25, 0.25, 0.25]],
    ['two upstreams', [{}, {}], [0.5, 0.5]],
  ]
  for (const [name, specs, ratios] of table) {
    const p = pool(...specs)
    const counts = new Map<string, number>()
    for (const h of picks(new RandomTwo(seeded(42)), p, 10_000)) counts.set(h, (counts.get(h) ?? 0) + 1)
    ratios.forEach((r, i) => {
      const host = String.fromCharCode(97 + i)
      const share = (counts.get(host) ?? 0) / 10_000
      t.ok(Math.abs(share - r) <= 0.02, `${name}: ${host} got ${(share * 100).toFixed(1)}% (want ${r * 100}% ±2%)`)
    })
  }
  const p = pool({}, {})
  ;(p.upstreams[0] as Upstream).inFlight = 5
  t.same(new Set(picks(new RandomTwo(seeded(1)), p, 50)), new Set(['b']), 'of two, always the one with fewer in flight')
  t.same(picks(new RandomTwo(), pool({}), 2), ['a', 'a'], 'one candidate: that one, with the default random source')
})

t.test('first: the first available in declared order', async t => {
  const p = pool({}, {}, {})
  t.same(picks(new First(), p, 3), ['a', 'a', 'a'], 'always a')
  p.upstreams[0]?.setHealthy(false, 'test')
  t.same(picks(new First(), p, 2), ['b', 'b'], 'a down: b')
})

t.test('slow start ramps the weight from 10% to 100%', async t => {
  const u = new Upstream({ host: 'a', port: 1, weight: 10, slowStart: 1000 }, defaults)
  t.equal(u.weightAt(0), 10, 'never down: full weight')
  u.recordFailure('x', 0)
  u.recordSuccess(5000)
  t.equal(u.weightAt(5000), 1, 'just back: 10%')
  t.equal(u.weightAt(5500), 5.5, 'half way: 55%')
  t.equal(u.weightAt(6000), 10, 'after slow_start: full')
  const p = new Pool([u, new Upstream({ host: 'b', port: 1, weight: 10 }, defaults)])
  u.upSince = performance.now()
  const early = picks(new RoundRobin(), p, 11).filter(h => h === 'a').length
  t.ok(early <= 2, `right after coming back, a gets ${early} of 11 picks at 10% weight`)
})
