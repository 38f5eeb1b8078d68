// The shape of /status.json, and how it is built from a balancer's state and counts that add up across workers.
import { performance } from 'node:perf_hooks'
import { hitRatio, mergeCacheCounts, type CacheCounts } from '../cache/counters.js'
import { RATE_SECONDS, classTotals, mergeStats, perSecond, quantile, toMicros, type StatsData } from './stats.js'
import { describeAdminState, type AdminState } from '../upstreams/admin-state.js'
import type { Upstream } from '../upstreams/upstream.js'
import type { BalancerView, ListenerConnections, StateView } from './view.js'

/**
 * The shape of `GET /status.json` on the admin port, also pushed as each `/events` message
 * and rendered by the dashboard. Version 1; fields are only ever added. Times are ms since
 * the epoch, durations in ms unless named `Seconds`.
 */
export interface StatusSnapshot {
  /** The shape's version: 1. */
  version: 1
  /** When the snapshot was taken. */
  now: number
  /** When the balancer started. */
  startedAt: number
  uptimeSeconds: number
  /** Balancer processes counted (1 unless `--workers`). */
  workers: number
  /** Each balancer process: what it has served, and its open connections (node:cluster deals connections out). */
  processes: { pid: number; requests: number; connectionsOpen: number }[]
  policy: string
  /** Whether the balancer is draining (SIGTERM / SIGINT). */
  draining: boolean
  connections: {
    /** Client connections open now. */
    open: number
    /** Client connections accepted since start. */
    total: number
    /** Open now by listener (`http`, `https`) and protocol (`http/1.1`, `h2`). */
    listeners: ListenerConnections[]
  }
  requests: {
    /** Requests answered since start, by every upstream and by the balancer itself (503 with no upstream, 400). */
    total: number
    /** Requests per second over the last 10 whole seconds. */
    perSecond: number
    /** Requests answered by the balancer without an upstream, by class. */
    unrouted: StatusClasses
  }
  /** The last 300 whole seconds, oldest first, as each second's start (ms epoch); upstreams' `rate` lines up with it. */
  rateSeconds: number[]
  upstreams: UpstreamStatus[]
  /** The edge cache, every worker's added up; null when it is off (`--cache`). Each worker has a cache of its own. */
  cache: CacheStatusView | null
}

/** The edge cache in the snapshot. */
export interface CacheStatusView extends CacheCounts {
  /** Over the last minute: responses served from what was stored over those it looked up (counters.ts hitRatio); null with none. */
  hitRatio: number | null
}

/** Responses by status class. */
export interface StatusClasses {
  '1xx': number
  '2xx': number
  '3xx': number
  '4xx': number
  '5xx': number
}

/** One upstream in the snapshot, in declared order; upstreams a reload removed follow while they drain. */
export interface UpstreamStatus {
  /** `host:port`. */
  id: string
  /**
   * - `up`: takes traffic;
   * - `down`: skipped: marked down by passive or active health, or by the operator (`down`);
   * - `draining`: removed (by a reload, the admin API or DNS), finishing the requests it has;
   * - `backup`: a backup upstream standing by while primaries are up.
   */
  state: 'up' | 'down' | 'draining' | 'backup'
  /** Why it is in that state, in words, e.g. `active check failed 3 times: GET /healthz -> ECONNREFUSED`. */
  reason: string
  /**
   * Set through the admin API (HAProxy's states): `ready`; `drain`, no new clients, sticky ones
   * still; `maint`, no requests and no health checks (its `state` is then `down`).
   */
  adminState: AdminState
  /** The DNS name this address was found under (`app.internal:5000`); null for an upstream given by address. */
  from: string | null
  /** Configured weight. */
  weight: number
  /** Weight in force now: below `weight` during slow start. */
  effectiveWeight: number
  backup: boolean
  /** 0: no limit. */
  maxConns: number
  inFlight: number
  /** Requests this upstream answered since start (its final try). */
  requests: number
  /** Its share of `requests.total`, 0..1. */
  share: number
  responses: StatusClasses
  /** Failed tries: connection refused or timed out, response timeout, reset, invalid response. */
  failures: number
  failuresByKind: { connect: number; timeout: number; reset: number; invalid: number }
  /** Tries that failed here and were sent on to another upstream. */
  retries: number
  /** The last active health check, when checks are on and one has finished. */
  lastCheck: { ok: boolean; detail: string; at: number } | null
  /** Upstream response time (request sent to response end) over the last minute; null when there were no requests. */
  latencyMs: { p50: number; p95: number; p99: number } | null
  /** Request body bytes sent to the upstream (the clients' uploads). */
  requestBodyBytes: number
  /** Response body bytes received from the upstream (what clients downloaded). */
  responseBodyBytes: number
  /** The same as `requestBodyBytes`, named from the balancer's side; kept, as the schema only grows. */
  bytesOut: number
  /** The same as `responseBodyBytes`, named from the balancer's side; kept, as the schema only grows. */
  bytesIn: number
  /** Requests per second over the last 10 whole seconds. */
  perSecond: number
  /** Requests per whole second over the last 300 s, oldest first, aligned with `rateSeconds`. */
  rate: number[]
}

/** What one balancer process contributes to the status: counts that add up across workers. */
export interface ProcessCounts {
  /** Each process counted: one here, one per worker once merged. */
  processes: { pid: number; requests: number; connectionsOpen: number }[]
  totals: StatsData
  unrouted: StatsData
  /** By upstream id. */
  upstreams: Record<string, StatsData & { inFlight: number }>
  connectionsOpen: number
  connectionsTotal: number
  /** The edge cache's figures; null when it is off. */
  cache: CacheCounts | null
  /** Open connections by listener and protocol. */
  listeners: ListenerConnections[]
}

/** The counts of one balancer process, now. */
export function processCounts(balancer: BalancerView, now = Date.now()): ProcessCounts {
  const upstreams: ProcessCounts['upstreams'] = {}
  for (const u of [...balancer.pool.upstreams, ...balancer.retired]) upstreams[u.id] = { ...u.stats.data(now), inFlight: u.inFlight }
  const totals = balancer.totals.data(now)
  return {
    processes: [{ pid: process.pid, requests: sum(classTotals(totals)), connectionsOpen: balancer.connectionsOpen }],
    totals,
    unrouted: balancer.unrouted.data(now),
    upstreams,
    connectionsOpen: balancer.connectionsOpen,
    connectionsTotal: balancer.connectionsTotal,
    cache: balancer.cacheCounts(),
    listeners: balancer.listenerConnections.map(l => ({ ...l })),
  }
}

/** Adds up the counts of several processes. */
export function mergeCounts(parts: readonly ProcessCounts[]): ProcessCounts {
  const ids = new Set(parts.flatMap(p => Object.keys(p.upstreams)))
  const upstreams: ProcessCounts['upstreams'] = {}
  for (const id of ids) {
    const mine = parts.flatMap(p => p.upstreams[id] ?? [])
    upstreams[id] = { ...mergeStats(mine), inFlight: mine.reduce((a, u) => a + u.inFlight, 0) }
  }
  return {
    processes: parts.flatMap(p => p.processes),
    totals: mergeStats(parts.map(p => p.totals)),
    unrouted: mergeStats(parts.map(p => p.unrouted)),
    upstreams,
    connectionsOpen: parts.reduce((a, p) => a + p.connectionsOpen, 0),
    connectionsTotal: parts.reduce((a, p) => a + p.connectionsTotal, 0),
    cache: mergeCacheCounts(parts.map(p => p.cache)),
    listeners: mergeListeners(parts.flatMap(p => p.listeners)),
  }
}

/** Open connections of several processes added up per listener and protocol, in first-seen order. */
function mergeListeners(all: readonly ListenerConnections[]): ListenerConnections[] {
  const merged = new Map<string, ListenerConnections>()
  for (const l of all) {
    const key = `${l.listener} ${l.protocol}`
    const seen = merged.get(key)
    if (seen === undefined) merged.set(key, { ...l })
    else seen.open += l.open
  }
  return [...merged.values()]
}

function classes(data: StatsData): StatusClasses {
  const [a, b, c, d, e] = classTotals(data) as [number, number, number, number, number]
  return { '1xx': a, '2xx': b, '3xx': c, '4xx': d, '5xx': e }
}

const sum = (xs: readonly number[]): number => xs.reduce((a, b) => a + b, 0)

/** State and reason of an upstream, as the dashboard shows them. */
function stateOf(balancer: StateView, u: Upstream, retired: boolean, now: number): [UpstreamStatus['state'], string] {
  if (retired) return ['draining', `removed (reload, admin API or DNS); finishing ${u.inFlight} request(s)`]
  const { pool } = balancer
  if (u.adminDown) return ['down', 'marked down in the configuration (down)']
  if (u.adminState === 'maint') return ['down', describeAdminState('maint')]
  if (u.adminState === 'drain' && pool.isHealthy(u, now)) return ['up', describeAdminState('drain')]
  // Down by health always has the change that took it down.
  if (!pool.isAvailable(u, now)) return ['down', (u.lastChange as { reason: string }).reason]
  if (u.backup && pool.upstreams.some(p => !p.backup && pool.isAvailable(p, now))) return ['backup', 'standing by while primaries are up']
  const weight = u.weightAt(now)
  if (weight < u.weight) return ['up', `slow start: weight ${weight.toFixed(2)} of ${u.weight}`]
  return ['up', u.lastChange?.reason ?? 'no failures seen']
}

/**
 * The status snapshot: the balancer's own upstream state (health is shared across workers)
 * with `counts`, this process's or every worker's added up.
 */
export function buildStatus(balancer: StateView, counts: ProcessCounts, workers = 1, now = Date.now()): StatusSnapshot {
  const perf = performance.now()
  const second = Math.floor(now / 1000)
  const rateSeconds = Array.from({ length: RATE_SECONDS }, (_, i) => (second - RATE_SECONDS + i) * 1000)
  const total = sum(classTotals(counts.totals))
  const retired = new Set(balancer.retired)
  const upstreams = [...balancer.pool.upstreams, ...retired].map((u): UpstreamStatus => {
    // Counts taken across a reload (a worker that has not applied it yet, or a request for
    // counts sent just before the primary did) may lack an upstream the reload added: zero.
    const data = counts.upstreams[u.id] ?? { ...mergeStats([]), inFlight: 0 }
    const requests = sum(classTotals(data))
    const [state, reason] = stateOf(balancer, u, retired.has(u), perf)
    const p = (q: number) => toMicros(quantile(data.latency, q) as number)
    return {
      id: u.id,
      state,
      reason,
      adminState: u.adminState,
      from: u.from ?? null,
      weight: u.weight,
      effectiveWeight: u.weightAt(perf),
      backup: u.backup,
      maxConns: u.maxConns,
      inFlight: data.inFlight,
      requests,
      share: total === 0 ? 0 : requests / total,
      responses: classes(data),
      failures: sum(Object.values(data.failures)),
      failuresByKind: data.failures,
      retries: data.retries,
      lastCheck: balancer.lastCheck(u.id) ?? null,
      latencyMs: sum(data.latency) === 0 ? null : { p50: p(0.5), p95: p(0.95), p99: p(0.99) },
      requestBodyBytes: data.bytesOut,
      responseBodyBytes: data.bytesIn,
      bytesOut: data.bytesOut,
      bytesIn: data.bytesIn,
      perSecond: perSecond(data.rate),
      rate: data.rate,
    }
  })
  return {
    version: 1,
    now,
    startedAt: balancer.startedAt,
    uptimeSeconds: Math.floor((now - balancer.startedAt) / 1000),
    workers,
    processes: counts.processes,
    policy: balancer.policyName,
    draining: balancer.draining,
    connections: { open: counts.connectionsOpen, total: counts.connectionsTotal, listeners: counts.listeners },
    requests: { total, perSecond: perSecond(counts.totals.rate), unrouted: classes(counts.unrouted) },
    rateSeconds,
    upstreams,
    cache: counts.cache === null ? null : { ...counts.cache, hitRatio: hitRatio(counts.cache.lastMinute) },
  }
}
