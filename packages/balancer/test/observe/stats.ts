import t from 'tap'
import {
  CLASSES,
  FAILURE_KINDS,
  LATENCY_BOUNDS,
  LATENCY_SECONDS,
  PER_SECOND_WINDOW,
  RATE_SECONDS,
  SecondRing,
  Stats,
  classIndex,
  classTotals,
  failureKind,
  latencyBucket,
  mergeStats,
  perSecond,
  quantile,
  type StatsData,
} from '../../src/observe/stats.js'

const BUCKETS = LATENCY_BOUNDS.length + 1
const OPEN = LATENCY_BOUNDS.length
const LAST_BOUND = LATENCY_BOUNDS[OPEN - 1]!

/** A whole second, so that `T0 + n * 1000` is the start of second `S0 + n`. */
const T0 = 1_700_000_000_000
const S0 = T0 / 1000

/** The next double above `x`: "just above a bound" at its tightest. */
function nextUp(x: number): number {
  const f = new Float64Array([x])
  const bits = new BigInt64Array(f.buffer)
  bits[0]! += 1n
  return f[0]!
}

/** Whether `ms` belongs in bucket `i`: LATENCY_BOUNDS[i-1] < ms <= LATENCY_BOUNDS[i], bucket 0 open below, the last open above. */
function inBucket(ms: number, i: number): boolean {
  const lower = i === 0 ? -Infinity : LATENCY_BOUNDS[i - 1]!
  const upper = i === OPEN ? Infinity : LATENCY_BOUNDS[i]!
  return lower < ms && ms <= upper
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0)

t.test('the latency bounds grow by 25% from 0.05 ms to about two minutes', async t => {
  t.equal(LATENCY_BOUNDS.length, 67, '67 bounded buckets')
  t.equal(LATENCY_BOUNDS[0], 0.05, 'the first bound is 0.05 ms')
  for (let i = 1; i < LATENCY_BOUNDS.length; i++) {
    const ratio = LATENCY_BOUNDS[i]! / LATENCY_BOUNDS[i - 1]!
    if (Math.abs(ratio - 1.25) > 1e-12) t.fail(`bound ${i} is ${ratio}× bound ${i - 1}, not 1.25×`)
  }
  t.ok(LAST_BOUND > 120_000 && LAST_BOUND < 130_000, `the last bound (${LAST_BOUND} ms) is about two minutes`)
})

t.test('latencyBucket puts edge values in the right bucket', async t => {
  const cases: [string, number, number][] = [
    ['0', 0, 0],
    ['negative', -5, 0],
    ['NaN', Number.NaN, 0],
    ['exactly the first bound', 0.05, 0],
    ['just above the first bound', 0.050001, 1],
    ['exactly the second bound', 0.0625, 1],
    ['1 ms', 1, 14],
    ['100 ms', 100, 35],
    ['exactly the last bound', LAST_BOUND, OPEN - 1],
    ['just above the last bound', LAST_BOUND * 1.000001, OPEN],
    ['an hour', 3_600_000, OPEN],
    ['1e300 ms', 1e300, OPEN],
    ['Number.MAX_VALUE', Number.MAX_VALUE, OPEN],
    ['Infinity', Infinity, OPEN],
  ]
  for (const [name, ms, want] of cases) t.equal(latencyBucket(ms), want, `${name} (${ms} ms) → bucket ${want}`)
})

t.test('latencyBucket: on, just below and just above every bound', async t => {
  const wrong: string[] = []
  LATENCY_BOUNDS.forEach((bound, k) => {
    const cases: [string, number, number][] = [
      ['on', bound, k],
      ['below', bound * (1 - 1e-12), k],
      ['above', bound * (1 + 1e-12), k + 1],
    ]
    for (const [where, ms, want] of cases) {
      const got = latencyBucket(ms)
      if (got !== want) wrong.push(`${where} bound ${k} (${ms}): ${got}, want ${want}`)
    }
  })
  t.same(wrong, [], 'each bound is the top of its own bucket')
})

// The logarithm comes out a hair low for most bounds: the next double above bound k must still
// land in bucket k + 1 (found by this test: 58 of the 67 did not, before the correction went up).
t.test('latencyBucket: the next double above a bound is in the next bucket', async t => {
  const wrong = LATENCY_BOUNDS.map((bound, k) => [k, nextUp(bound), latencyBucket(nextUp(bound))] as const).filter(
    ([k, , got]) => got !== k + 1,
  )
  t.same(wrong, [], 'no bound has its next double in its own bucket')
})

t.test('latencyBucket: LATENCY_BOUNDS[i-1] < ms <= LATENCY_BOUNDS[i] over 0.001 ms to 1000 s', async t => {
  const wrong: string[] = []
  const seen = new Set<number>()
  let n = 0
  for (let e = -3; e <= 6; e += 0.0007, n++) {
    const ms = 10 ** e
    const i = latencyBucket(ms)
    seen.add(i)
    if (!inBucket(ms, i)) wrong.push(`${ms} ms → ${i}`)
  }
  t.ok(n > 10_000, `${n} values checked`)
  t.same(wrong, [], 'every value is in the bucket whose bounds hold it')
  t.equal(seen.size, BUCKETS, 'the sweep reaches every bucket, the open one included')
})

t.test('SecondRing counts per second and reads back a series with 0 for unseen seconds', async t => {
  const ring = new SecondRing(5)
  ring.add(100)
  ring.add(100)
  ring.add(101)
  ring.add(103)
  t.same(ring.series(103), [0, 2, 1, 0, 1], 'seconds 99..103, oldest first')
  t.same(ring.series(104), [2, 1, 0, 1, 0], 'a second later, the window moves by one')
  t.same(ring.series(102), [0, 0, 2, 1, 0], 'a window ending before 103 does not show it')
  t.same(ring.series(200), [0, 0, 0, 0, 0], 'long after, everything is stale')
  t.same(new SecondRing(3).series(S0), [0, 0, 0], 'a fresh ring reads all zeros')
  t.same(new SecondRing(3).sums(S0), [0], 'and sums to zero')
})

t.test('SecondRing wraps around: a slot reused for a new second starts from 0', async t => {
  const ring = new SecondRing(3)
  for (let i = 0; i < 3; i++) ring.add(10)
  ring.add(11)
  t.same(ring.series(11), [0, 3, 1], 'seconds 9..11 before the wrap')
  ring.add(13) // 13 % 3 === 10 % 3: the slot of second 10
  t.same(ring.series(13), [1, 0, 1], 'seconds 11..13: second 13 counts 1, not 3 + 1')
  t.same(ring.sums(13), [2], 'the sum has second 11 and 13, and nothing of 10')
  t.same(ring.series(10), [0, 0, 0], 'second 10 is gone: its slot holds 13 now')
})

t.test('SecondRing sums only the seconds in (now - length, now]', async t => {
  const ring = new SecondRing(3)
  ring.add(10)
  ring.add(11)
  ring.add(11)
  ring.add(12)
  t.same(ring.sums(12), [4], '10, 11 and 12 are all in (9, 12]')
  t.same(ring.sums(13), [3], '10 is stale in (10, 13]')
  t.same(ring.sums(11), [3], '12 is in the future of 11')
  t.same(ring.sums(9), [0], 'every slot is in the future of 9')
  t.same(ring.sums(15), [0], 'every slot is stale by 15')
})

t.test('SecondRing with width > 1 keeps a counter set per second', async t => {
  const ring = new SecondRing(3, 4)
  ring.add(5, 2)
  ring.add(5, 2)
  ring.add(5, 0)
  ring.add(6, 3)
  ring.add(6)
  t.same(ring.sums(6), [2, 0, 2, 1], 'each counter summed over seconds 4..6')
  t.same(ring.series(6), [0, 1, 1], 'series reads counter 0 only')
  ring.add(8, 1) // the slot of second 5
  t.same(ring.sums(8), [1, 1, 0, 1], 'second 5 was cleared across its whole width, second 6 kept')
})

t.test('classIndex maps a status to its class, anything else to 5xx', async t => {
  const cases: [number, string][] = [
    [100, '1xx'],
    [101, '1xx'],
    [199, '1xx'],
    [200, '2xx'],
    [204, '2xx'],
    [304, '3xx'],
    [400, '4xx'],
    [499, '4xx'],
    [500, '5xx'],
    [504, '5xx'],
    [599, '5xx'],
    [99, '5xx'],
    [600, '5xx'],
    [0, '5xx'],
    [-1, '5xx'],
  ]
  for (const [status, want] of cases) t.equal(CLASSES[classIndex(status)], want, `${status} is ${want}`)
})

t.test('failureKind labels a failed try', async t => {
  const cases: [string, boolean, string][] = [
    ['ECONNREFUSED', false, 'connect'],
    ['EHOSTUNREACH', false, 'connect'],
    ['SWITCHYARD_CONNECT_TIMEOUT', false, 'connect'],
    ['SWITCHYARD_UPSTREAM_TIMEOUT', false, 'connect'],
    ['HPE_INVALID_STATUS', false, 'connect'],
    ['SWITCHYARD_UPSTREAM_TIMEOUT', true, 'timeout'],
    ['HPE_INVALID_STATUS', true, 'invalid'],
    ['HPE_HEADER_OVERFLOW', true, 'invalid'],
    ['ECONNRESET', true, 'reset'],
    ['EPIPE', true, 'reset'],
    ['undefined', true, 'reset'],
  ]
  for (const [code, connected, want] of cases) {
    t.equal(failureKind(code, connected), want, `${code}, ${connected ? 'connected' : 'not connected'}: ${want}`)
  }
  t.same([...FAILURE_KINDS].sort(), [...new Set(cases.map(c => c[2]))].sort(), 'the cases cover every kind')
})

t.test('Stats.record counts per method and class, and per second', async t => {
  const s = new Stats()
  s.record('GET', 200, 5, T0)
  s.record('GET', 404, undefined, T0 + 999)
  s.record('POST', 502, undefined, T0 + 1000)
  s.record('GET', 101, 1, T0 + 2500)
  s.record('PUT', 600, undefined, T0 + 2999)
  t.same(
    Object.fromEntries(s.byMethod),
    { GET: [1, 1, 0, 1, 0], POST: [0, 0, 0, 0, 1], PUT: [0, 0, 0, 0, 1] },
    'one counter per class, per method',
  )

  const at3 = s.data(T0 + 3000)
  t.equal(at3.rate.length, RATE_SECONDS, `the rate series is ${RATE_SECONDS} seconds`)
  t.same(at3.rate.slice(-4), [0, 2, 1, 2], 'seconds S0-1..S0+2: the last whole seconds before S0+3')
  t.equal(sum(at3.rate), 5, 'every request is in the series')

  const at2 = s.data(T0 + 2999)
  t.same(at2.rate.slice(-3), [0, 2, 1], 'the second under way (S0+2) is not in the series')
  t.equal(sum(at2.rate), 3, 'only whole seconds count')

  const later = s.data(T0 + (RATE_SECONDS + 1) * 1000)
  t.same(later.rate.slice(0, 2), [1, 2], `${RATE_SECONDS} s on, S0 has left and S0+1, S0+2 are the oldest seconds`)
  t.equal(sum(s.data(T0 + (RATE_SECONDS + 3) * 1000).rate), 0, 'and then they are gone')
})

t.test('Stats.record keeps latency only when an upstream answered', async t => {
  const s = new Stats()
  const told: number[] = []
  s.record('GET', 200, 5, T0)
  s.onLatency = seconds => told.push(seconds)
  s.record('GET', 502, undefined, T0)
  s.record('GET', 200, 250, T0 + 2000)
  s.record('GET', 504, undefined, T0 + 2000)
  t.same(told, [0.25], 'onLatency is told seconds, and only for an upstream response')

  const { latency } = s.data(T0 + 2000)
  t.equal(latency.length, BUCKETS, `${BUCKETS} latency buckets`)
  t.equal(sum(latency), 2, 'two latencies, the two answers without one not counted')
  t.equal(latency[latencyBucket(5)], 1, '5 ms in its bucket')
  t.equal(latency[latencyBucket(250)], 1, '250 ms in its bucket')

  t.equal(sum(s.data(T0 + LATENCY_SECONDS * 1000).latency), 1, `${LATENCY_SECONDS} s on, S0 has left the window`)
  t.equal(sum(s.data(T0 + (LATENCY_SECONDS + 2) * 1000).latency), 0, 'and then S0+2 too')
  t.equal(sum(s.data(T0 - 1000).latency), 0, 'a snapshot before the records holds none of them')
})

t.test('Stats reads the clock when no time is given', async t => {
  const s = new Stats()
  s.record('HEAD', 200, 3)
  const d = s.data()
  t.same(d.byMethod, { HEAD: [0, 1, 0, 0, 0] }, 'counted')
  t.equal(d.latency[latencyBucket(3)], 1, 'the latency is in the current minute')
  t.ok(sum(d.rate) <= 1, 'the rate holds the request at most once (not at all while its second is under way)')
})

t.test('Stats.data is a snapshot: changing it changes nothing in the stats', async t => {
  const s = new Stats()
  s.record('GET', 200, 5, T0)
  s.failures.connect = 2
  s.retries = 3
  s.bytesIn = 10
  s.bytesOut = 20
  const want: StatsData = {
    byMethod: { GET: [0, 1, 0, 0, 0] },
    failures: { connect: 2, timeout: 0, reset: 0, invalid: 0 },
    retries: 3,
    bytesIn: 10,
    bytesOut: 20,
    rate: new Array<number>(RATE_SECONDS).fill(0),
    latency: new Array<number>(BUCKETS).fill(0),
  }
  want.rate[RATE_SECONDS - 1] = 1
  want.latency[latencyBucket(5)] = 1
  const d = s.data(T0 + 1000)
  t.same(d, want, 'the snapshot carries every counter')
  d.byMethod.GET![1] = 99
  d.byMethod.NEW = [1, 1, 1, 1, 1]
  d.failures.connect = 99
  d.rate[RATE_SECONDS - 1] = 99
  d.latency[0] = 99
  d.retries = 99
  t.same(s.data(T0 + 1000), want, 'a second snapshot is unchanged')
  t.same(s.byMethod.get('GET'), [0, 1, 0, 0, 0], 'the live counts are unchanged')
  t.equal(s.failures.connect, 2, 'the live failures are unchanged')
})

t.test('mergeStats adds every counter of every part', async t => {
  const a = new Stats()
  a.record('GET', 200, 1, T0)
  a.record('POST', 201, 10, T0 + 1000)
  a.failures.connect = 1
  a.failures.reset = 2
  a.retries = 1
  a.bytesIn = 100
  a.bytesOut = 1000
  const b = new Stats()
  b.record('GET', 503, undefined, T0)
  b.record('GET', 200, 1, T0 + 1000)
  b.record('DELETE', 404, 100_000_000, T0 + 1000)
  b.failures.timeout = 4
  b.failures.invalid = 5
  b.failures.reset = 1
  b.retries = 2
  b.bytesIn = 5
  b.bytesOut = 50

  const now = T0 + 2000
  const [da, db] = [a.data(now), b.data(now)]
  const merged = mergeStats([da, db])
  t.same(
    merged.byMethod,
    { GET: [0, 2, 0, 0, 1], POST: [0, 1, 0, 0, 0], DELETE: [0, 0, 0, 1, 0] },
    'GET summed; POST and DELETE present though each is in one part only',
  )
  t.same(merged.failures, { connect: 1, timeout: 4, reset: 3, invalid: 5 }, 'failures summed by kind')
  t.equal(merged.retries, 3, 'retries summed')
  t.equal(merged.bytesIn, 105, 'bytes in summed')
  t.equal(merged.bytesOut, 1050, 'bytes out summed')
  t.same(
    merged.rate,
    da.rate.map((n, i) => n + db.rate[i]!),
    'rate summed second by second',
  )
  t.same(merged.rate.slice(-2), [2, 3], 'seconds S0 and S0+1 from both parts')
  t.same(
    merged.latency,
    da.latency.map((n, i) => n + db.latency[i]!),
    'latency summed bucket by bucket',
  )
  t.equal(merged.latency[latencyBucket(1)], 2, 'both 1 ms latencies in one bucket')
  t.equal(merged.latency[OPEN], 1, 'the 100000 s latency in the open bucket')

  t.same(da.byMethod, { GET: [0, 1, 0, 0, 0], POST: [0, 1, 0, 0, 0] }, 'the parts are not changed by merging')
  t.same(mergeStats([da]), da, 'one part merges to itself')
})

t.test('mergeStats of nothing is all zeros, full length', async t => {
  const empty = mergeStats([])
  t.same(empty.byMethod, {}, 'no methods')
  t.same(empty.failures, { connect: 0, timeout: 0, reset: 0, invalid: 0 }, 'no failures')
  t.equal(empty.retries + empty.bytesIn + empty.bytesOut, 0, 'no retries or bytes')
  t.same(empty.rate, new Array(RATE_SECONDS).fill(0), `${RATE_SECONDS} zero seconds`)
  t.same(empty.latency, new Array(BUCKETS).fill(0), `${BUCKETS} zero buckets`)
  t.same(mergeStats([new Stats().data(T0)]), empty, 'an empty Stats merges to the same')
})

t.test('classTotals sums each class over the methods', async t => {
  const data = mergeStats([])
  t.same(classTotals(data), [0, 0, 0, 0, 0], 'no methods: zeros')
  data.byMethod = { GET: [1, 2, 0, 0, 1], POST: [0, 1, 0, 3, 0], PUT: [0, 0, 7, 0, 0] }
  t.same(classTotals(data), [1, 3, 7, 3, 1], 'per class, over GET, POST and PUT')
})

t.test('quantile reports the upper bound of the bucket that holds the rank', async t => {
  t.equal(quantile([], 0.5), undefined, 'no buckets: undefined')
  t.equal(quantile(new Array(BUCKETS).fill(0), 0.99), undefined, 'all empty: undefined')

  // 100 latencies: 50 at 0.1 ms, 45 at 2 ms, 4 at 40 ms, 1 at 500 ms.
  const s = new Stats()
  const spread: [number, number][] = [
    [0.1, 50],
    [2, 45],
    [40, 4],
    [500, 1],
  ]
  for (const [ms, n] of spread) for (let i = 0; i < n; i++) s.record('GET', 200, ms, T0)
  const { latency } = s.data(T0)
  const bound = (ms: number): number => LATENCY_BOUNDS[latencyBucket(ms)]!
  const cases: [number, number][] = [
    [0, 0.1],
    [0.01, 0.1],
    [0.5, 0.1],
    [0.51, 2],
    [0.95, 2],
    [0.96, 40],
    [0.99, 40],
    [0.995, 500],
    [1, 500],
  ]
  for (const [q, ms] of cases) {
    const got = quantile(latency, q)
    t.equal(got, bound(ms), `p${q * 100} is the bucket bound over ${ms} ms`)
    t.ok(got !== undefined && ms <= got && got <= ms * 1.25, `p${q * 100} = ${got} reads at most 25% above ${ms} ms`)
  }
  t.equal(quantile(latency, 0.5), 0.1220703125, 'p50 exactly: bound 4, 0.05 × 1.25^4')
})

t.test('quantile in the open bucket reports the last bound', async t => {
  const open = new Array<number>(BUCKETS).fill(0)
  open[OPEN] = 3
  t.equal(quantile(open, 0.5), LAST_BOUND, 'only open-bucket latencies: the last bound')
  open[0] = 1
  t.equal(quantile(open, 0.25), LATENCY_BOUNDS[0], 'p25 of 1 fast + 3 slow is the fast one')
  t.equal(quantile(open, 0.26), LAST_BOUND, 'p26 is in the open bucket')
  t.equal(quantile(open, 1), LAST_BOUND, 'so is the maximum')
})

t.test('perSecond averages the last window of the series', async t => {
  const rate = new Array<number>(RATE_SECONDS).fill(0)
  for (let i = 1; i <= 10; i++) rate[RATE_SECONDS - 11 + i] = i
  rate[RATE_SECONDS - 11] = 1000 // just outside the default window
  t.equal(PER_SECOND_WINDOW, 10, 'the default window is 10 s')
  t.equal(perSecond(rate), 5.5, '(1 + … + 10) / 10, the 1000 before the window left out')
  t.equal(perSecond(rate, 3), 9, '(8 + 9 + 10) / 3')
  t.equal(perSecond(rate, 11), 1055 / 11, 'a window of 11 takes the 1000 in')
  t.equal(perSecond(new Array<number>(RATE_SECONDS).fill(0)), 0, 'no requests: 0 per second')
})
