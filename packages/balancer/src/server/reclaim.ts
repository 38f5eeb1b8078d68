// Giving memory back after a surge of connections: full collections once the surge is over.
import { EventEmitter } from 'node:events'
import v8 from 'node:v8'
import vm from 'node:vm'

/**
 * Full collections run once a surge is over, and the pause before each, in ms. Measured after
 * 10,000 idle clients closed (RSS 151 MB): V8 hands back its emptied pages only to a collection
 * some 6 s after the first (five 100 ms apart: 120 MB; five 1 s apart: 121 MB; 2 s apart: 89 MB
 * from the fifth; 3 s apart: 88 MB from the fourth), and RSS follows one collection later.
 */
const COLLECTIONS = 5
const PAUSE_MS = 2000

/** What one reclaim did: memory before the first collection and after the last, in bytes. */
export interface Reclaimed {
  /** The open-connection peak that ended. */
  peak: number
  rssBefore: number
  rssAfter: number
  heapBefore: number
  heapAfter: number
}

let collect: (() => void) | undefined

/**
 * V8's `gc()`, made reachable without starting Node with `--expose-gc` (the way Jest's
 * `--logHeapUsage` reaches it). Asked for only when a reclaim runs.
 */
function fullCollection(): () => void {
  if (collect === undefined) {
    v8.setFlagsFromString('--expose-gc')
    collect = vm.runInNewContext('gc') as () => void
  }
  return collect
}

/**
 * Gives memory back after a surge of connections. V8 collects when JavaScript allocates, so a
 * balancer that just lost 10,000 idle clients and now sees little traffic keeps their garbage,
 * and the RSS that holds it, until its next busy spell (measured: 74 MB before the clients,
 * 152 MB with them, still 152 MB 38 s after they closed). nginx frees a connection's memory as
 * it closes. So once the open connections fall to a quarter of a peak of at least `min`, this
 * runs five full collections two seconds apart (V8's own memory reducer also spaces its
 * collections out, but it starts only when something else sets it off): the first frees the
 * objects, the later ones the native memory their finalizers release and the pages left empty.
 * Each pauses the process for a few tens of ms (about 25 ms with 50 MB of heap here), once per
 * surge. Emits 'reclaimed' with a `Reclaimed` when done.
 */
export class Reclaimer extends EventEmitter {
  /** The smallest peak of open connections worth a reclaim; 0 turns reclaiming off. */
  min: number
  #peak = 0
  #timer: NodeJS.Timeout | undefined
  #left = 0
  #before: NodeJS.MemoryUsage | undefined
  #ended = 0

  constructor(min: number) {
    super()
    this.min = min
  }

  /** Told the number of open connections whenever it changes. */
  count(open: number): void {
    if (open > this.#peak) this.#peak = open
    if (this.min === 0 || this.#peak < this.min || open > this.#peak / 4 || this.#timer !== undefined) return
    this.#ended = this.#peak
    this.#peak = open
    this.#left = COLLECTIONS
    this.#before = process.memoryUsage()
    this.#timer = setTimeout(this.#step, PAUSE_MS)
    this.#timer.unref()
  }

  /** Stops a reclaim under way (the balancer closed). */
  stop(): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #step = (): void => {
    fullCollection()()
    if (--this.#left > 0) {
      ;(this.#timer as NodeJS.Timeout).refresh()
      return
    }
    this.#timer = undefined
    const before = this.#before as NodeJS.MemoryUsage
    const after = process.memoryUsage()
    const reclaimed: Reclaimed = {
      peak: this.#ended,
      rssBefore: before.rss,
      rssAfter: after.rss,
      heapBefore: before.heapUsed,
      heapAfter: after.heapUsed,
    }
    this.emit('reclaimed', reclaimed)
  }
}
