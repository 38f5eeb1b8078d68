// Balancing policies end to end: a real balancer in front of real upstreams, all on
// 127.0.0.1 port 0, every request over a real socket. Who served a request is read from the
// upstream's own `X-Served-By`, and counted again from what each upstream saw.
import { setTimeout as delay } from 'node:timers/promises'
import { performance } from 'node:perf_hooks'
import t from 'tap'
import { fetchText, startBalancer, startUpstream, type Reply, type TestUpstream } from '../packages/balancer/test/fixtures/servers.js'

const spec = (u: TestUpstream, extra: object = {}) => ({ host: '127.0.0.1', port: u.port, ...extra })
const by = (r: Reply): string => r.headers['x-served-by'] as string

/** `n` sequential GETs, each on a fresh connection. */
async function sequence(port: number, n: number, headers?: Record<string, string>): Promise<Reply[]> {
  const out: Reply[] = []
  for (let i = 0; i < n; i++) out.push(await fetchText(port, { headers }))
  return out
}

function tally(names: string[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const n of names) out[n] = (out[n] ?? 0) + 1
  return out
}

const statuses = (replies: Reply[]) => [...new Set(replies.map(r => r.status))]

t.test('round-robin, weights 3:1: exactly 300/100 of 400, in nginx smooth order', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [], { upstreams: [spec(a, { weight: 3 }), spec(b, { weight: 1 })] })
  const order = (await sequence(port, 400)).map(by)
  t.same(order.slice(0, 8), ['a', 'a', 'b', 'a', 'a', 'a', 'b', 'a'], 'the first 8 are nginx smooth WRR: a a b a, a a b a')
  t.same(tally(order), { a: 300, b: 100 }, 'X-Served-By: exactly 300 a and 100 b')
  t.same([a.seen.length, b.seen.length], [300, 100], 'and the upstreams saw exactly 300 and 100')
  const longest = Math.max(
    ...order
      .join('')
      .split('b')
      .map(run => run.length),
  )
  t.equal(longest, 3, 'never more than 3 a in a row (smooth, not aaa...ab bursts)')
  t.equal(order.join(''), 'aaba'.repeat(100), 'the whole order is a a b a, 100 times over')
})

t.test('least-requests sends most traffic to the fast upstream under concurrency', async t => {
  const slow = await startUpstream(t, 'slow', (_req, res) => void setTimeout(() => res.end('slow'), 300))
  const fast = await startUpstream(t, 'fast')
  const { port } = await startBalancer(t, [], { upstreams: [spec(slow), spec(fast)], policy: 'least-requests' })
  const loop = () => sequence(port, 10)
  const replies = (await Promise.all(Array.from({ length: 8 }, loop))).flat()
  t.same(statuses(replies), [200], '8 loops x 10 requests: all 80 answered 200')
  const [s, f] = [slow.seen.length, fast.seen.length]
  t.equal(s + f, 80, `all 80 reached an upstream (slow ${s}, fast ${f})`)
  t.ok(f > 3 * s, `fast got more than 3x slow: fast ${f}, slow ${s}`)
  t.ok(s >= 1, `an idle pool rotates, so the first request (declared first: slow) went to slow: ${s}`)
})

t.test('a backup serves only while every primary is down, and hands back when one returns', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const { port, logs } = await startBalancer(t, [], {
    upstreams: [spec(a), spec(b), spec(c, { backup: true })],
    failTimeout: 300,
  })
  let replies = await sequence(port, 20)
  t.same(statuses(replies), [200], 'all primaries up: 20 x 200')
  t.same(tally(replies.map(by)), { a: 10, b: 10 }, 'split over a and b')
  t.equal(c.seen.length, 0, 'the backup got 0 of 20')

  await a.close()
  replies = await sequence(port, 20)
  t.same(statuses(replies), [200], 'a stopped: still 20 x 200')
  t.same(tally(replies.map(by)), { b: 20 }, 'all served by b')
  t.equal(c.seen.length, 0, 'one primary left: the backup still got 0')

  await b.close()
  replies = await sequence(port, 10)
  t.same(statuses(replies), [200], 'both primaries stopped: 10 x 200')
  t.same(tally(replies.map(by)), { c: 10 }, 'all served by the backup')
  for (const u of [a, b])
    t.ok(
      logs.some(l => l.startsWith(`upstream ${u.spec} marked down`)),
      `${u.spec} marked down is logged`,
    )

  const a2 = await startUpstream(t, 'a-again', undefined, a.port)
  t.equal(a2.port, a.port, 'a restarted on its old port')
  await delay(400) // fail_timeout (300 ms) must run out before a is tried again
  const cBefore = c.seen.length
  replies = await sequence(port, 10)
  t.same(statuses(replies), [200], 'after fail_timeout: 10 x 200')
  t.same(tally(replies.map(by)), { 'a-again': 10 }, 'traffic is back on a')
  t.equal(c.seen.length, cBefore, 'and the backup gets none again')
  t.ok(
    logs.some(l => l.startsWith(`upstream ${a.spec} is up again`)),
    'a coming back is logged',
  )
})

t.test('slow start: a returning upstream ramps up to its share over slowStart', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const slowStart = 60_000
  const { balancer, port } = await startBalancer(t, [], { upstreams: [spec(a), spec(b, { slowStart })] })
  t.same(tally((await sequence(port, 10)).map(by)), { a: 5, b: 5 }, 'never down: b at full weight, 5 of 10')
  const ub = balancer.pool.upstreams[1]
  t.equal(ub?.id, b.spec, 'the second upstream object is b')
  t.ok(ub?.setHealthy(false, 'test'), 'b marked down')
  const back = performance.now()
  t.ok(ub?.setHealthy(true, 'test'), 'and up again')
  t.ok((ub?.upSince as number) >= back, 'which starts its slow start')
  // Each step is 40 requests at one point of the ramp, placed by moving the start of the slow
  // start back: the shares then follow the ramp, not how many requests the machine sends in
  // a window of time. Over 60 s the weight moves by 0.015 a second, nothing within a step.
  const points = [0, 20_000, 40_000, slowStart]
  const shares: number[] = []
  for (const elapsed of points) {
    ;(ub as NonNullable<typeof ub>).upSince = performance.now() - elapsed
    const served = tally((await sequence(port, 40)).map(by))
    shares.push((served.b ?? 0) / 40)
  }
  // Weights 0.1, 0.4, 0.7, 1 against a's 1: shares of about 9%, 29%, 41%, 50%.
  const pct = shares.map(s => `${(s * 100).toFixed(1)}%`).join(', ')
  const [first, second, third, last] = shares as [number, number, number, number]
  t.ok(first <= 0.15, `at the start: b gets about a tenth of a's share (${pct})`)
  t.ok(first < second && second < third && third < last, `b's share rises along the ramp (${pct})`)
  t.ok(last >= 0.45 && last <= 0.55, `after slowStart: b near half (${pct})`)
  t.equal(ub?.weightAt(performance.now()), 1, 'after slowStart, b is at full weight')
})

t.test('hash on a header: each user keeps one upstream, and losing one moves only its users', async t => {
  const ups = [await startUpstream(t, 'a'), await startUpstream(t, 'b'), await startUpstream(t, 'c')]
  const { port } = await startBalancer(t, [], {
    upstreams: ups.map(u => spec(u)),
    policy: 'hash',
    hashKey: { kind: 'header', name: 'x-user' },
    failTimeout: 60_000,
  })
  // 30 users, not 20: with 3 upstreams, the chance that one gets no user at all falls from 1e-3 to 1e-5.
  const users = Array.from({ length: 30 }, (_, i) => `user-${i}`)
  /** One GET per user, in user order; `round` times over. */
  const rounds = async (round: number) => {
    const out: Reply[][] = users.map(() => [])
    for (let r = 0; r < round; r++) {
      for (const [i, user] of users.entries()) out[i]?.push(await fetchText(port, { headers: { 'x-user': user } }))
    }
    return out
  }
  const before = await rounds(5)
  t.same(statuses(before.flat()), [200], '30 users x 5 requests: all 200')
  const home = before.map(rs => [...new Set(rs.map(by))])
  t.same(
    users.filter((_, i) => home[i]?.length !== 1),
    [],
    'every user landed on one upstream all 5 times',
  )
  const placed = tally(home.map(h => h[0] as string))
  t.same(Object.keys(placed).sort(), ['a', 'b', 'c'], `30 users spread over all 3 upstreams: ${JSON.stringify(placed)}`)

  const anon = await sequence(port, 3)
  t.same(statuses(anon), [200], 'no X-User: still 200')
  t.same(anon.map(by), ['a', 'b', 'c'], 'no X-User: round-robin fallback')

  await ups[1]?.close()
  const after = await rounds(2)
  t.same(statuses(after.flat()), [200], 'b stopped: 30 users x 2 requests, all 200')
  const now = after.map(rs => [...new Set(rs.map(by))])
  const kept = users.filter((_, i) => home[i]?.[0] !== 'b')
  const moved = users.filter((_, i) => home[i]?.[0] === 'b')
  t.same(
    kept.map(u => `${u}:${now[users.indexOf(u)]?.join('+')}`),
    kept.map(u => `${u}:${home[users.indexOf(u)]?.[0]}`),
    `the ${kept.length} users on a and c keep their upstream`,
  )
  const movedTo = moved.map(u => now[users.indexOf(u)] as string[])
  t.ok(moved.length > 0, `b had users to move: ${moved.length}`)
  t.ok(
    movedTo.every(to => to.length === 1 && to[0] !== 'b'),
    `each of b's users moved to one other upstream and stayed there: ${movedTo.map(to => to.join('+')).join(' ')}`,
  )
})

t.test('hash on a header named in mixed case through the API', async t => {
  const ups = [await startUpstream(t, 'a'), await startUpstream(t, 'b')]
  const { port } = await startBalancer(t, [], {
    upstreams: ups.map(u => spec(u)),
    policy: 'hash',
    hashKey: { kind: 'header', name: 'X-User' },
  })
  const replies = await sequence(port, 4, { 'x-user': 'alice' })
  t.equal(new Set(replies.map(by)).size, 1, `one user, one upstream (got ${replies.map(by).join(' ')})`)
})

t.test("first: everything to the first until it's down, then the second", async t => {
  const ups = [await startUpstream(t, 'a'), await startUpstream(t, 'b'), await startUpstream(t, 'c')]
  const { port } = await startBalancer(t, [], { upstreams: ups.map(u => spec(u)), policy: 'first', failTimeout: 300 })
  let replies = await sequence(port, 10)
  t.same(statuses(replies), [200], '10 x 200')
  t.same(tally(replies.map(by)), { a: 10 }, 'all 10 to the first')
  const [a] = ups as [TestUpstream]
  await a.close()
  replies = await sequence(port, 10)
  t.same(statuses(replies), [200], 'a stopped: still 10 x 200')
  t.same(tally(replies.map(by)), { b: 10 }, 'all 10 to the second')
  t.equal(ups[2]?.seen.length, 0, 'the third got none')
  await startUpstream(t, 'a-again', undefined, a.port)
  await delay(400) // past fail_timeout
  t.same(tally((await sequence(port, 5)).map(by)), { 'a-again': 5 }, 'a back after fail_timeout: first again')
})
