// A worker's side of the cluster: it passes its health changes on, applies the others', and answers for its counts.
import { AggregatorRegistry } from 'prom-client'
import { createMetrics } from '../observe/metrics.js'
import { processCounts } from '../observe/status.js'
import type { BalancerView, CacheControl } from '../observe/view.js'
import type { UpstreamGroup } from '../upstreams/group.js'
import type { HealthChange } from '../upstreams/upstream.js'
import { applyNews, isOurs, newsOf, type CountsReply, type Hello, type PurgeReply, type RuntimeApplied, type ToWorker } from './messages.js'

/** A worker's link to its primary: `process`, in the CLI. */
export interface Channel {
  send(message: unknown): unknown
  on(event: 'message', listener: (message: unknown) => void): unknown
}

/** A balancer as a worker runs it: its counts, and its upstream group. */
export interface Member extends BalancerView, CacheControl {
  readonly upstreams: UpstreamGroup
}

/**
 * The worker's side of the cluster: it sends the primary each health change it sees, applies
 * the changes others saw, answers requests for its counts, and lets prom-client's
 * AggregatorRegistry read its metrics. Resolves once the primary has told it the health
 * every other worker has: only then may it listen, so a replacement never serves with a
 * stale view.
 */
export function joinCluster(balancer: Member, channel: Channel): Promise<void> {
  // prom-client answers the primary's requests for metrics only once an AggregatorRegistry
  // exists in the worker too (its listeners are added by the constructor).
  new AggregatorRegistry()
  AggregatorRegistry.setRegistries([createMetrics(balancer)])
  balancer.upstreams.on('health', (change: HealthChange) => channel.send(newsOf(change)))
  return new Promise<void>(welcomed => {
    channel.on('message', m => {
      if (!isOurs<ToWorker>(m)) return
      if (m.switchyard === 'health') applyNews(balancer.upstreams, m)
      else if (m.switchyard === 'welcome') welcomed()
      else if (m.switchyard === 'purge?')
        channel.send({ switchyard: 'purged', seq: m.seq, purged: balancer.purgeCache(m.target) ?? null } satisfies PurgeReply)
      else if (m.switchyard === 'runtime') {
        balancer.upstreams.restore(m.snapshot)
        channel.send({ switchyard: 'applied', seq: m.seq } satisfies RuntimeApplied)
      } else channel.send({ switchyard: 'counts', seq: m.seq, counts: processCounts(balancer) } satisfies CountsReply)
    })
    // Not at 'online': node:cluster says that before this code runs, and news sent then is lost.
    channel.send({ switchyard: 'hello' } satisfies Hello)
  })
}
