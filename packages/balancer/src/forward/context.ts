// What every exchange and WebSocket tunnel shares with the forwarder: the settings in force and the parts they use.
import type { Agent, IncomingMessage } from 'node:http'
import type { Outcome } from '../observe/recorder.js'
import type { Choosing } from '../select/choose.js'
import type { WaitQueue } from '../select/queue.js'
import type { Sticky } from '../select/sticky.js'
import type { HealthChange, Upstream } from '../upstreams/upstream.js'
import type { Engine } from './engine.js'

/** The forwarding settings in force, replaced as a whole on reload: the pool, policy and retry budget, and these. Durations are in ms. */
export interface ForwardSettings extends Choosing {
  /** The keep-alive agent for upstream connections. */
  agent: Agent
  connectTimeout: number
  timeout: number
  retryOnTimeout: boolean
  clientBodyTimeout: number
  /** Idle time after which an open WebSocket tunnel is closed; 0: never. */
  tunnelTimeout: number
  /** Where requests wait when every candidate is at max_conns. */
  queue: WaitQueue
  /** Sticky sessions by cookie, when on. */
  sticky: Sticky | undefined
}

/**
 * The forwarder as an exchange or a tunnel sees it (the Forwarder implements it): they read
 * `settings` afresh at each step, so a reload applies to requests in flight from then on.
 */
export interface ForwardContext {
  readonly settings: ForwardSettings
  /** Builds and sends upstream requests and WebSocket handshakes. */
  readonly engine: Engine
  /**
   * Opens a new connection for each request: for the one resend of a request whose kept-alive
   * connection the upstream closed as it was reused (nginx does the same).
   */
  readonly fresh: Agent
  /** Set while the balancer drains: every response then carries `Connection: close`. */
  readonly draining: boolean
  /** Passes a change of an upstream's health on (logged once if it flips availability). */
  reportHealth(change: HealthChange | undefined): void
  /** Counts a finished request or tunnel and writes its access-log entry. */
  finished(req: IncomingMessage, status: number, upstream: Upstream | undefined, outcome: Outcome): void
}
