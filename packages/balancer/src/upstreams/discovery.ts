// DNS discovery: names looked up again at their TTL, with HAProxy's hold rules; hands on each name's addresses.
/**
 * DNS discovery: upstream names looked up again and again (nginx `server NAME resolve`, HAProxy
 * `server-template` with a `resolvers` section), each answer handed on as the name's addresses.
 * What to do with them (an upstream per address, draining those that went) is the pool's.
 */
import { EventEmitter } from 'node:events'
import { performance } from 'node:perf_hooks'
import { lookup, nameOf, type DnsName, type DnsResolver, type Found, type Lookup } from './dns-lookup.js'

/** Options of `Discovery`. Durations in ms. */
export interface DiscoveryOptions {
  /** Where queries go. Default: `createResolver()`, the system's servers. */
  resolver: DnsResolver
  /** The longest time between two lookups of a name, whatever its TTL (`--resolve-interval`). Default 30 000. */
  interval?: number
  /** How long NXDOMAIN or an empty answer must last before a name's addresses drain (HAProxy `hold nx` and `hold obsolete`). Default 30 000. */
  hold?: number
  /** Receives one line per change of a name's addresses, per failure streak and per empty streak. Default: none. */
  log?: (line: string) => void
}

/** The shortest time between two lookups: a TTL of 0 would query without pause. */
export const MIN_INTERVAL = 1000

/** What discovery keeps per name. */
interface Watch {
  name: DnsName
  /** The name as logged: `app.internal:5000`. */
  label: string
  /** The addresses handed on last. */
  found: Found[]
  /** Whether lookups are failing now: the first failure of a streak is logged, the others not. */
  failing: boolean
  /** When NXDOMAIN / an empty answer began while the name had addresses (ms); undefined: not now. */
  emptySince: number | undefined
  /** The wait after a lookup with no answer: 1 s, doubled each time up to `interval` (HAProxy `timeout retry`, with backoff). */
  retry: number
  timer: NodeJS.Timeout | undefined
  /** False once the name is no longer watched: a lookup still out then is dropped. */
  live: boolean
}

const list = (found: readonly Found[]): string =>
  found.length === 0 ? 'none' : found.map(f => (f.address.includes(':') ? `[${f.address}]:${f.port}` : `${f.address}:${f.port}`)).join(', ')
const same = (a: readonly Found[], b: readonly Found[]): boolean => JSON.stringify(a) === JSON.stringify(b)
const keyOf = (f: Found): string => `${f.address} ${f.port}`
/** Primaries first, then by address and port: a server that rotates its answers changes nothing. */
const order = (a: Found, b: Found): number => Number(a.backup) - Number(b.backup) || (keyOf(a) < keyOf(b) ? -1 : 1)

/**
 * Watches names. Each is looked up at once, then again when its TTL runs out: at least
 * `MIN_INTERVAL` and at most `interval` later. Its addresses are handed on with a `change` event
 * `(label, found)` whenever they differ from the last ones.
 *
 * Failures keep what was known, as HAProxy's `hold valid` does:
 * - a lookup that fails (a timeout, SERVFAIL, a refused query) keeps the last answer, and logs one
 *   line per streak of failures;
 * - NXDOMAIN or an empty answer drains a name's addresses only once it has lasted `hold` (HAProxy
 *   `hold nx 30s`): a name briefly missing while a record is replaced costs nothing;
 * - a name with no address at the start is allowed, with a warning, as backends often come up
 *   after their balancer: it is looked up again, after 1 s, then 2 s, up to `interval`.
 */
export class Discovery extends EventEmitter<{ change: [label: string, found: Found[]] }> {
  readonly #resolver: DnsResolver
  readonly #interval: number
  readonly #hold: number
  readonly #log: (line: string) => void
  readonly #watches = new Map<string, Watch>()

  constructor(options: DiscoveryOptions) {
    super()
    this.#resolver = options.resolver
    this.#interval = Math.max(MIN_INTERVAL, options.interval ?? 30_000)
    this.#hold = options.hold ?? 30_000
    this.#log = options.log ?? (() => {})
  }

  /** The labels of the names watched. */
  get labels(): string[] {
    return [...this.#watches.keys()]
  }

  /** The addresses `label` has now; empty for a name not watched. */
  found(label: string): Found[] {
    return this.#watches.get(label)?.found ?? []
  }

  /**
   * Starts watching `name`, and resolves once its first lookup is over, whatever it found: the
   * addresses are then in `found(label)`, and were handed on with `change` if there were any.
   * Watching a name already watched does nothing. Returns the label.
   */
  async watch(name: DnsName): Promise<string> {
    const label = nameOf(name)
    if (this.#watches.has(label)) return label
    const w: Watch = { name, label, found: [], failing: false, emptySince: undefined, retry: MIN_INTERVAL, timer: undefined, live: true }
    this.#watches.set(label, w)
    await this.#run(w, true)
    return label
  }

  /** Stops watching a name. Its addresses are not taken back: that is the caller's to decide. */
  unwatch(label: string): void {
    const w = this.#watches.get(label)
    if (w === undefined) return
    w.live = false
    clearTimeout(w.timer)
    this.#watches.delete(label)
  }

  /** Stops every lookup; queries still out are cancelled. No timer is left. */
  stop(): void {
    for (const label of this.labels) this.unwatch(label)
    this.#resolver.cancel()
  }

  async #run(w: Watch, first: boolean): Promise<void> {
    const outcome = await lookup(this.#resolver, w.name)
    if (!w.live) return
    const delay = this.#settle(w, outcome, first, performance.now())
    w.timer = setTimeout(() => void this.#run(w, false), delay).unref()
  }

  /** Applies one outcome; returns the wait before the next lookup. */
  #settle(w: Watch, outcome: Lookup, first: boolean, now: number): number {
    if (outcome.kind === 'answer') {
      if (w.failing || w.emptySince !== undefined) this.#log(`discovery: ${w.label} resolves again`)
      w.failing = false
      w.emptySince = undefined
      w.retry = MIN_INTERVAL
      this.#publish(w, outcome.found)
      const ttl = outcome.ttl === undefined ? this.#interval : outcome.ttl * 1000
      return Math.min(this.#interval, Math.max(MIN_INTERVAL, ttl))
    }
    const delay = w.retry
    w.retry = Math.min(this.#interval, w.retry * 2)
    if (first) {
      this.#log(`discovery: warning: ${w.label} has no address yet (${outcome.why}); starting without it, and looking it up again`)
      w.failing = outcome.kind === 'failed'
      return delay
    }
    if (outcome.kind === 'failed') {
      if (!w.failing) this.#log(`discovery: ${w.label}: lookup failed (${outcome.why}); keeping the last answer: ${list(w.found)}`)
      w.failing = true
      return delay
    }
    w.failing = false
    if (w.found.length === 0) return delay
    if (w.emptySince === undefined) {
      w.emptySince = now
      this.#log(`discovery: ${w.label}: ${outcome.why}; its addresses (${list(w.found)}) drain if this lasts ${this.#hold / 1000}s`)
    }
    const left = w.emptySince + this.#hold - now
    if (left > 0) return Math.min(delay, left)
    this.#log(`discovery: ${w.label}: ${outcome.why} for ${this.#hold / 1000}s; draining ${list(w.found)}`)
    w.emptySince = undefined
    this.#publish(w, [])
    return delay
  }

  #publish(w: Watch, answer: readonly Found[]): void {
    const found = [...answer].sort(order)
    if (same(found, w.found)) return
    const before = new Set(w.found.map(keyOf))
    const after = new Set(found.map(keyOf))
    const added = found.filter(f => !before.has(keyOf(f)))
    const gone = w.found.filter(f => !after.has(keyOf(f)))
    w.found = found
    this.#log(`discovery: ${w.label} -> ${list(found)} (added ${list(added)}; removed ${list(gone)})`)
    this.emit('change', w.label, found)
  }
}
