// Keep-alive agents for upstream connections: idle connections are closed by one sweep per agent, not by a timer per socket.
import { Agent as HttpAgent, type AgentOptions, type IncomingHttpHeaders } from 'node:http'
import { Agent as HttpsAgent, type AgentOptions as HttpsAgentOptions } from 'node:https'
import type { Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import type { Duplex } from 'node:stream'
import { memoized } from '../util/memo.js'

/** When a pooled connection last went idle (`performance.now()`), and how long it may stay so. */
const kIdleSince = Symbol('switchyard.idleSince')
const kIdleLimit = Symbol('switchyard.idleLimit')
type Pooled = Socket & {
  [kIdleSince]?: number
  [kIdleLimit]?: number
  /** Node's: the request the socket served last, and its response. */
  _httpMessage?: { res?: { headers: IncomingHttpHeaders } | null } | null
}

/**
 * What Node's agent takes off a server's announced `Keep-Alive: timeout=N`, so that it closes
 * first (HTTP_AGENT_KEEP_ALIVE_TIMEOUT_BUFFER in lib/_http_agent.js).
 */
const HINT_MARGIN_MS = 1000
/**
 * The idle time a server's `Keep-Alive: timeout=N` allows, less Node's margin; NaN when it gives
 * none. An upstream sends the same value on every response (Node's `timeout=5`), so the regular
 * expression runs once per distinct value rather than once per response (memoized, bounded to
 * 64 values).
 */
export const hintedLimit = memoized((value: string): number => {
  const seconds = /^timeout=(\d+)/.exec(value)?.[1]
  return seconds === undefined ? NaN : Math.max(0, Number(seconds) * 1000 - HINT_MARGIN_MS)
}, 64)

/** How often idle connections are looked at, for a limit of `limit` ms: an eighth of it, from 10 ms to 1 s. */
function intervalFor(limit: number): number {
  return Math.max(10, Math.min(1000, Math.floor(limit / 8)))
}

/**
 * Closes an agent's connections that stay idle too long: `idle` ms, or less when the upstream
 * announced a shorter keep-alive timeout (Node's rule: its timeout less a second; none left,
 * and the connection is not kept at all).
 *
 * Node's own `timeout` agent option does the same with a timer on every socket, re-armed as the
 * socket goes back to the pool after each request, plus a 'timeout' listener added to and taken
 * off the socket for every request: a few µs per request on the balancer's hot path (its CPU
 * profile, issue 15). Here a request costs one clock read when its connection goes idle, and
 * one sweep every eighth of the shortest limit (at most every second) walks the idle
 * connections. A connection is closed by the sweep before the one that would find it past its
 * limit, so it is never kept longer than the limit (it may go up to one sweep interval sooner):
 * the point of the limit is to close before the upstream does, or the next request would race
 * the upstream's close.
 *
 * The sweep runs only while the agent has idle connections, so an agent that is dropped (a new
 * idle time on reload, a removed upstream) holds no timer and is collected.
 */
class IdleSweep {
  readonly #agent: HttpAgent
  readonly #idle: number
  readonly #keepAliveMsecs: number
  #interval = 0
  #timer: NodeJS.Timeout | undefined

  /** `keepAliveMsecs`: the TCP keep-alive delay, Node's agent option (default 1000). */
  constructor(agent: HttpAgent, idle: number, keepAliveMsecs = 1000) {
    this.#agent = agent
    this.#idle = idle
    this.#keepAliveMsecs = keepAliveMsecs
  }

  /** Node's keepSocketAlive, but the idle limit is noted on the socket instead of set as its timeout. */
  keep(socket: Pooled): boolean {
    socket.setKeepAlive(true, this.#keepAliveMsecs)
    socket.unref()
    let limit = this.#idle
    const hint = socket._httpMessage?.res?.headers['keep-alive']
    // Node joins a repeated Keep-Alive into one string; the type allows a list.
    if (typeof hint === 'string') {
      const hinted = hintedLimit(hint)
      if (hinted === 0) return false
      if (hinted < limit) limit = hinted
    }
    socket[kIdleSince] = performance.now()
    socket[kIdleLimit] = limit
    // A shorter limit than the sweep was set up for (an upstream's hint) needs closer sweeps.
    const interval = intervalFor(limit)
    if (this.#timer === undefined || interval < this.#interval) {
      clearInterval(this.#timer)
      this.#interval = interval
      this.#timer = setInterval(() => this.#sweep(), interval)
      this.#timer.unref()
    }
    return true
  }

  #sweep(): void {
    const now = performance.now()
    let left = 0
    const free = this.#agent.freeSockets
    for (const name in free) {
      // A copy: a destroyed socket leaves the agent's list (on its 'close', but be safe).
      for (const socket of [...(free[name] as Pooled[])]) {
        // Past the limit by the next sweep: close it now rather than one interval too late.
        if (now - (socket[kIdleSince] as number) + this.#interval >= (socket[kIdleLimit] as number)) socket.destroy()
        else left++
      }
    }
    if (left === 0) {
      clearInterval(this.#timer)
      this.#timer = undefined
    }
  }
}

/**
 * A keep-alive agent for plain upstreams: LIFO (the warmest connection is reused, the others
 * idle out), idle ones closed after `idle` ms. The TLS one below is the same over https.Agent,
 * which http-proxy needs for an `https:` target.
 */
export class KeepAliveAgent extends HttpAgent {
  readonly #sweep: IdleSweep
  constructor(idle: number, options: AgentOptions = {}) {
    super({ ...options, keepAlive: true, scheduling: 'lifo' })
    this.#sweep = new IdleSweep(this, idle, options.keepAliveMsecs)
  }
  override keepSocketAlive(socket: Duplex): boolean {
    return this.#sweep.keep(socket as Pooled)
  }
}

/** The same for TLS upstreams. */
export class TlsKeepAliveAgent extends HttpsAgent {
  readonly #sweep: IdleSweep
  constructor(idle: number, options: HttpsAgentOptions = {}) {
    super({ ...options, keepAlive: true, scheduling: 'lifo' })
    this.#sweep = new IdleSweep(this, idle, options.keepAliveMsecs)
  }
  override keepSocketAlive(socket: Duplex): boolean {
    return this.#sweep.keep(socket as Pooled)
  }
}
