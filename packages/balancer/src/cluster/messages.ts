// What a cluster's primary and its workers tell each other over node:cluster's channel, and how health news applies.
import type { PurgeTarget } from '../cache/edge-cache.js'
import type { ProcessCounts } from '../observe/status.js'
import type { UpstreamGroup } from '../upstreams/group.js'
import type { RuntimeSnapshot } from '../upstreams/runtime.js'
import type { HealthChange } from '../upstreams/upstream.js'

/**
 * A health change one process saw, for the others to apply: passive ones come from the worker
 * whose request failed, active ones from the primary, which runs the checks once for all.
 */
export interface HealthNews {
  switchyard: 'health'
  id: string
  up: boolean
  source: HealthChange['source']
  reason: string
  /** For passive news of a failure: how long the upstream stays out, in ms. */
  ms: number
}

/** A worker is ready for news: the primary sends it the health every other worker has. */
export interface Hello {
  switchyard: 'hello'
}

/** After the news a hello asked for: the worker may listen. */
export interface Welcome {
  switchyard: 'welcome'
}

/** The primary asks a worker for its counts; `seq` names the request. */
export interface CountsAsk {
  switchyard: 'counts?'
  seq: number
}

export interface CountsReply {
  switchyard: 'counts'
  seq: number
  counts: ProcessCounts
}

/** The primary asks a worker to purge its edge cache (`DELETE /cache` on the admin listener). */
export interface PurgeAsk {
  switchyard: 'purge?'
  seq: number
  target: PurgeTarget
}

/** What the worker removed; null when its cache is off. */
export interface PurgeReply {
  switchyard: 'purged'
  seq: number
  purged: number | null
}

/**
 * The upstreams' runtime state (admin API changes, DNS's answers), from the primary: each worker
 * applies it whole and acknowledges `seq`, so that the primary answers an admin call only once
 * every worker holds the change.
 */
export interface RuntimeNews {
  switchyard: 'runtime'
  seq: number
  snapshot: RuntimeSnapshot
}

export interface RuntimeApplied {
  switchyard: 'applied'
  seq: number
}

export type ToWorker = HealthNews | CountsAsk | Welcome | PurgeAsk | RuntimeNews
export type ToPrimary = HealthNews | CountsReply | Hello | PurgeReply | RuntimeApplied

/** Our messages carry `switchyard`; prom-client's own (cluster metrics) share the channel. */
export function isOurs<T>(m: unknown): m is T {
  return typeof m === 'object' && m !== null && 'switchyard' in m
}

/** News of a change, for the other processes; whether it flipped availability is for each to tell. */
export function newsOf(change: Omit<HealthChange, 'flipped'>, ms = change.upstream.failTimeout): HealthNews {
  return { switchyard: 'health', id: change.upstream.id, up: change.up, source: change.source, reason: change.reason, ms }
}

/**
 * Applies news to a group, silently: the process that saw the change has logged it if it was a
 * flip. Every change travels, flip or not, so that each process holds both kinds of health as
 * they are: the checks taking out an upstream that a failed request already took out flip
 * nothing, but the workers must still keep it out once fail_timeout ends.
 */
export function applyNews(group: UpstreamGroup, news: HealthNews): void {
  const u = group.find(news.id)
  if (u === undefined) return
  if (news.source === 'active') u.setHealthy(news.up, news.reason)
  else u.applyPassive(news.up, news.ms, news.reason)
}
