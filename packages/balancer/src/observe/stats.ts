// The counters behind status and metrics: per method and status class, per second, latency buckets; they add up across workers.
/**
 * Request counting for the admin listener: plain numbers bumped on the hot path, read when
 * someone asks (the dashboard, `/status.json`, a Prometheus scrape). Every figure here merges
 * by adding, so counts from several worker processes sum to the whole.
 */

/** Seconds of per-second request counts kept: the dashboard's 5-minute chart. */
export const RATE_SECONDS = 300
/** Seconds of latency kept for the dashboard's percentiles. */
export const LATENCY_SECONDS = 60
/** Seconds averaged for "requests per second". */
export const PER_SECOND_WINDOW = 10

/**
 * Upper bounds (ms) of the latency buckets: 0.05 ms × 1.25^i, up to about two minutes, then
 * one open bucket. A percentile is reported as its bucket's upper bound, so it reads at most
 * 25% high, the price of keeping a minute of latencies in 67 numbers per second that add up
 * across workers (HdrHistogram and Envoy's histograms make the same trade).
 */
export const LATENCY_BOUNDS: readonly number[] = Array.from({ length: 67 }, (_, i) => 0.05 * 1.25 ** i)
const LOG_BASE = Math.log(1.25)

/** The bucket of a latency in ms. */
export function latencyBucket(ms: number): number {
  if (!(ms > LATENCY_BOUNDS[0]!)) return 0
  // The logarithm can come out a hair low (never high, on V8, for these bounds): a value just
  // above a bound then lands in that bound's bucket, which one comparison corrects.
  let i = Math.ceil(Math.log(ms / 0.05) / LOG_BASE)
  if (i < LATENCY_BOUNDS.length && ms > LATENCY_BOUNDS[i]!) i++
  return Math.min(i, LATENCY_BOUNDS.length)
}

/** A ring of per-second slots, each holding `width` counters for the second it last saw. */
export class SecondRing {
  readonly #length: number
  readonly #width: number
  /** The second (since the epoch) each slot holds. */
  readonly #seconds: Float64Array
  readonly #counts: Uint32Array

  constructor(length: number, width = 1) {
    this.#length = length
    this.#width = width
    this.#seconds = new Float64Array(length).fill(-1)
    this.#counts = new Uint32Array(length * width)
  }

  /** Adds one to counter `i` of second `second`. */
  add(second: number, i = 0): void {
    const slot = second % this.#length
    if (this.#seconds[slot] !== second) {
      this.#seconds[slot] = second
      this.#counts.fill(0, slot * this.#width, (slot + 1) * this.#width)
    }
    this.#counts[slot * this.#width + i]!++
  }

  /** Counter 0 of each of the `length` seconds ending with `now`, oldest first; 0 for a second not seen. */
  series(now: number): number[] {
    const out = new Array<number>(this.#length).fill(0)
    for (let k = 0; k < this.#length; k++) {
      const second = now - this.#length + 1 + k
      const slot = second % this.#length
      if (this.#seconds[slot] === second) out[k] = this.#counts[slot * this.#width]!
    }
    return out
  }

  /** Each counter summed over the seconds in (now - length, now]. */
  sums(now: number): number[] {
    const out = new Array<number>(this.#width).fill(0)
    for (let slot = 0; slot < this.#length; slot++) {
      const second = this.#seconds[slot]!
      if (second <= now - this.#length || second > now) continue
      for (let i = 0; i < this.#width; i++) out[i]! += this.#counts[slot * this.#width + i]!
    }
    return out
  }
}

/** Status classes, as indexed in the counts: 1xx..5xx → 0..4. */
export const CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const
export type StatusClass = (typeof CLASSES)[number]

/** The class index of a status; anything outside 100–599 counts as 5xx. */
export function classIndex(status: number): number {
  const i = Math.floor(status / 100) - 1
  return i >= 0 && i < 5 ? i : 4
}

/** Why a try on an upstream failed, as the metrics label it. */
export const FAILURE_KINDS = ['connect', 'timeout', 'reset', 'invalid'] as const
export type FailureKind = (typeof FAILURE_KINDS)[number]

/**
 * The kind of a failed try from its error code: no connection (refused, unreachable, connect
 * timeout) is `connect`; after connecting, the response timeout is `timeout`, an HTTP parse
 * error (`HPE_*`) or a response the balancer cannot pass on is `invalid`, and anything else that cut the exchange is `reset`.
 */
export function failureKind(code: string, connected: boolean): FailureKind {
  if (!connected) return 'connect'
  if (code === 'SWITCHYARD_UPSTREAM_TIMEOUT') return 'timeout'
  if (code.startsWith('HPE_') || code === 'SWITCHYARD_INVALID_RESPONSE') return 'invalid'
  return 'reset'
}

/** Counts per method: one counter per status class. */
export type MethodCounts = Map<string, number[]>

/** What one counter set holds, as plain data: what `/status.json` is built from and workers send. */
export interface StatsData {
  /** method → counts by class. */
  byMethod: Record<string, number[]>
  failures: Record<FailureKind, number>
  retries: number
  bytesIn: number
  bytesOut: number
  /** Requests in each of the last RATE_SECONDS whole seconds (the one under way not included), oldest first. */
  rate: number[]
  /** Latency bucket counts over the last LATENCY_SECONDS. */
  latency: number[]
}

/** The counters of one upstream (or of the balancer's own answers). */
export class Stats {
  readonly byMethod: MethodCounts = new Map()
  readonly failures: Record<FailureKind, number> = { connect: 0, timeout: 0, reset: 0, invalid: 0 }
  retries = 0
  bytesIn = 0
  bytesOut = 0
  readonly #rate = new SecondRing(RATE_SECONDS)
  readonly #latency = new SecondRing(LATENCY_SECONDS, LATENCY_BOUNDS.length + 1)
  /** Also told each upstream response time, in seconds: the Prometheus histogram, when on. */
  onLatency: ((seconds: number) => void) | undefined

  /** Counts a request answered with `status`; `upstreamMs` when an upstream response came. */
  record(method: string, status: number, upstreamMs: number | undefined, now = Date.now()): void {
    let counts = this.byMethod.get(method)
    if (counts === undefined) {
      counts = [0, 0, 0, 0, 0]
      this.byMethod.set(method, counts)
    }
    counts[classIndex(status)]!++
    const second = Math.floor(now / 1000)
    this.#rate.add(second)
    if (upstreamMs === undefined) return
    this.#latency.add(second, latencyBucket(upstreamMs))
    this.onLatency?.(upstreamMs / 1000)
  }

  /** A snapshot as plain data, for `now` (ms since the epoch). */
  data(now = Date.now()): StatsData {
    const second = Math.floor(now / 1000)
    return {
      byMethod: Object.fromEntries([...this.byMethod].map(([m, c]) => [m, [...c]])),
      failures: { ...this.failures },
      retries: this.retries,
      bytesIn: this.bytesIn,
      bytesOut: this.bytesOut,
      rate: this.#rate.series(second - 1),
      latency: this.#latency.sums(second),
    }
  }
}

/** The sum of several snapshots of the same counters (one per worker). */
export function mergeStats(parts: readonly StatsData[]): StatsData {
  const out: StatsData = {
    byMethod: {},
    failures: { connect: 0, timeout: 0, reset: 0, invalid: 0 },
    retries: 0,
    bytesIn: 0,
    bytesOut: 0,
    rate: new Array<number>(RATE_SECONDS).fill(0),
    latency: new Array<number>(LATENCY_BOUNDS.length + 1).fill(0),
  }
  for (const p of parts) {
    for (const [m, counts] of Object.entries(p.byMethod)) {
      const into = (out.byMethod[m] ??= [0, 0, 0, 0, 0])
      counts.forEach((n, i) => (into[i]! += n))
    }
    for (const k of FAILURE_KINDS) out.failures[k] += p.failures[k]
    out.retries += p.retries
    out.bytesIn += p.bytesIn
    out.bytesOut += p.bytesOut
    p.rate.forEach((n, i) => (out.rate[i]! += n))
    p.latency.forEach((n, i) => (out.latency[i]! += n))
  }
  return out
}

/** Counts by class, summed over methods. */
export function classTotals(data: StatsData): number[] {
  const out = [0, 0, 0, 0, 0]
  for (const counts of Object.values(data.byMethod)) counts.forEach((n, i) => (out[i]! += n))
  return out
}

/** Milliseconds rounded to the microsecond, as /status.json and JSON log lines show them. */
export function toMicros(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** The `q` quantile (0..1) of bucketed latencies, as its bucket's upper bound in ms; undefined when empty. */

export function quantile(latency: readonly number[], q: number): number | undefined {
  const total = latency.reduce((a, b) => a + b, 0)
  if (total === 0) return undefined
  const rank = Math.max(1, Math.ceil(q * total))
  let seen = 0
  for (let i = 0; i < LATENCY_BOUNDS.length; i++) {
    seen += latency[i]!
    if (seen >= rank) return LATENCY_BOUNDS[i]
  }
  // Only the open last bucket is left: report its lower bound, "at least this".
  return LATENCY_BOUNDS[LATENCY_BOUNDS.length - 1]
}

/** The mean rate over the last `window` seconds of a per-second series. */
export function perSecond(rate: readonly number[], window = PER_SECOND_WINDOW): number {
  return rate.slice(-window).reduce((a, b) => a + b, 0) / window
}
