// The Prometheus metrics of one balancer process, read from its counts at scrape time.
import { CACHE_STATUSES } from '../cache/types.js'
import type { CacheCounts } from '../cache/counters.js'
import { performance } from 'node:perf_hooks'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import { ADMIN_STATES } from '../upstreams/admin-state.js'
import { CLASSES, FAILURE_KINDS } from './stats.js'
import type { BalancerView } from './view.js'

/**
 * Upstream response-time buckets, in seconds: prom-client's defaults (5 ms to 10 s) with
 * 1 ms and 2.5 ms below them, since a loopback upstream answers in about a millisecond.
 */
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** The label for requests no upstream answered (503 with none available, 400). */
export const NO_UPSTREAM = 'none'

/**
 * The balancer's Prometheus metrics, through prom-client, on a registry of their own (so
 * that several balancers in one process, as in tests, do not collide).
 *
 * The counters and gauges are read from the balancer's own counts at scrape time (prom-client's
 * `collect`), so a request costs nothing extra for them. Only the histogram is fed per
 * request, through `Stats.onLatency`, while metrics are on. Names and labels are a contract:
 * dashboards and alerts rely on them (README, "Metrics").
 */
export function createMetrics(balancer: BalancerView): Registry {
  const registry = new Registry()
  const registers = [registry]
  const upstreams = () => [...balancer.pool.upstreams, ...balancer.retired]
  const now = () => performance.now()

  new Counter({
    name: 'switchyard_requests_total',
    help: 'Requests answered, by the upstream of the last try ("none" when the balancer answered itself), method and status class.',
    labelNames: ['upstream', 'method', 'code_class'],
    registers,
    collect() {
      this.reset()
      const add = (upstream: string, byMethod: Map<string, number[]>) => {
        for (const [method, counts] of byMethod) {
          counts.forEach((n, i) => {
            if (n > 0) this.inc({ upstream, method, code_class: CLASSES[i] }, n)
          })
        }
      }
      for (const u of upstreams()) add(u.id, u.stats.byMethod)
      add(NO_UPSTREAM, balancer.unrouted.byMethod)
    },
  })
  new Counter({
    name: 'switchyard_upstream_failures_total',
    help: 'Failed tries on an upstream, by kind: connect (refused, unreachable, connect timeout), timeout (response), reset, invalid (malformed response).',
    labelNames: ['upstream', 'kind'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams()) for (const kind of FAILURE_KINDS) this.inc({ upstream: u.id, kind }, u.stats.failures[kind])
    },
  })
  new Counter({
    name: 'switchyard_retries_total',
    help: "Tries that failed on an upstream and were sent on to another (HAProxy's per-server retries).",
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams()) this.inc({ upstream: u.id }, u.stats.retries)
    },
  })
  new Counter({
    name: 'switchyard_upstream_bytes_total',
    help: 'Body bytes exchanged with an upstream: direction "out" to it (requests), "in" from it (responses).',
    labelNames: ['upstream', 'direction'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams()) {
        this.inc({ upstream: u.id, direction: 'out' }, u.stats.bytesOut)
        this.inc({ upstream: u.id, direction: 'in' }, u.stats.bytesIn)
      }
    },
  })
  new Gauge({
    name: 'switchyard_upstream_in_flight',
    help: 'Requests (and WebSocket tunnels) being proxied to an upstream now.',
    labelNames: ['upstream'],
    registers,
    collect() {
      this.reset()
      for (const u of upstreams()) this.set({ upstream: u.id }, u.inFlight)
    },
  })
  new Gauge({
    name: 'switchyard_upstream_up',
    help: '1 when an upstream may take requests (health checks, passive health and the operator allow it), else 0.',
    labelNames: ['upstream'],
    registers,
    // Health is one view shared by every worker: across workers the lowest value holds.
    aggregator: 'min',
    collect() {
      this.reset()
      const t = now()
      for (const u of balancer.pool.upstreams) this.set({ upstream: u.id }, balancer.pool.isAvailable(u, t) ? 1 : 0)
    },
  })
  new Gauge({
    name: 'switchyard_upstream_admin_state',
    help: 'The admin state set through the admin API (HAProxy ready / drain / maint): 1 for the state an upstream is in, 0 for the others.',
    labelNames: ['upstream', 'state'],
    registers,
    // Every worker applies a change before it is answered: the states agree.
    aggregator: 'max',
    collect() {
      this.reset()
      for (const u of balancer.pool.upstreams)
        for (const state of ADMIN_STATES) this.set({ upstream: u.id, state }, u.adminState === state ? 1 : 0)
    },
  })
  new Gauge({
    name: 'switchyard_connections_open',
    help: 'Client connections open now.',
    registers,
    collect() {
      this.set(balancer.connectionsOpen)
    },
  })
  // The edge cache (cache/), when it is on: nothing is exported while it is off. Across workers
  // each sums (every worker has a cache of its own).
  new Counter({
    name: 'switchyard_cache_requests_total',
    help: "Responses on the edge cache's routes, by X-Cache-Status (nginx's $upstream_cache_status values).",
    labelNames: ['status'],
    registers,
    collect() {
      this.reset()
      const counts = balancer.cacheCounts()
      if (counts === null) return
      for (const status of CACHE_STATUSES) this.inc({ status }, counts.requests[status])
    },
  })
  const cacheGauge = (name: string, help: string, read: (c: CacheCounts) => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        const counts = balancer.cacheCounts()
        if (counts === null) this.reset()
        else this.set(read(counts))
      },
    })
  cacheGauge('switchyard_cache_bytes', 'Bytes the edge cache holds, headers counted; within its budget (--cache).', c => c.bytes)
  cacheGauge('switchyard_cache_entries', 'Responses the edge cache holds, every variant counted.', c => c.entries)
  new Counter({
    name: 'switchyard_cache_evictions_total',
    help: 'Responses the edge cache dropped to make room for new ones.',
    registers,
    collect() {
      this.reset()
      const counts = balancer.cacheCounts()
      if (counts !== null) this.inc(counts.evictions)
    },
  })
  new Gauge({
    name: 'switchyard_listener_connections_open',
    help: 'Client connections open now, by listener (http, https) and protocol (http/1.1, h2).',
    labelNames: ['listener', 'protocol'],
    registers,
    collect() {
      this.reset()
      for (const l of balancer.listenerConnections) this.set({ listener: l.listener, protocol: l.protocol }, l.open)
    },
  })
  const histogram = new Histogram({
    name: 'switchyard_upstream_response_seconds',
    help: 'Time from sending a request upstream to the end of its response, by upstream.',
    labelNames: ['upstream'],
    buckets: BUCKETS,
    registers,
  })
  // Fed per request; an upstream added by a reload is wired when it first shows in a scrape.
  const wire = () => {
    for (const u of upstreams()) {
      if (u.stats.onLatency === undefined) {
        const child = histogram.labels({ upstream: u.id })
        u.stats.onLatency = seconds => child.observe(seconds)
      }
    }
  }
  wire()
  balancer.on('reload', wire)
  collectDefaultMetrics({ register: registry })
  return registry
}
