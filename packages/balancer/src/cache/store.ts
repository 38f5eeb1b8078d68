// Where stored responses live: an lru-cache bounded by bytes, one slot per primary key (Host, path and query) holding that URL's variants.
import type { IncomingHttpHeaders } from 'node:http'
import { LRUCache } from 'lru-cache'
import type { Entry } from './entry.js'
import { variantKey } from './vary.js'

/** A URL's stored variants, newest first. Never changed in place: lru-cache sizes a value when it is set. */
interface Variants {
  readonly entries: readonly Entry[]
  readonly size: number
}

/**
 * The primary key of a request (RFC 9111 §2): the Host and the request target, byte for byte,
 * split by a byte neither may hold (Node refuses a line feed in both). The scheme is left out:
 * the balancer listens on plain HTTP alone.
 */
export function primaryKey(host: string | undefined, target: string): string {
  return `${host ?? ''}\n${target}`
}

/** The request target (path and query) of a primary key. */
function targetOf(key: string): string {
  return key.slice(key.indexOf('\n') + 1)
}

const sizeOf = (v: Variants): number => v.size

/**
 * Stored responses within a byte budget. Each URL holds up to `maxVariants` variants (one per
 * distinct selection of its `Vary` headers); the least recently used URL goes first when a new
 * response needs room, all its variants with it.
 */
export class CacheStore {
  readonly maxBytes: number
  readonly maxVariants: number
  /** Entries dropped to make room, since start. */
  evictions = 0
  #entries = 0
  readonly #lru: LRUCache<string, Variants>

  constructor(maxBytes: number, maxVariants = 16) {
    this.maxBytes = maxBytes
    this.maxVariants = maxVariants
    this.#lru = new LRUCache<string, Variants>({
      maxSize: maxBytes,
      sizeCalculation: sizeOf,
      dispose: (value, _key, reason) => {
        this.#entries -= value.entries.length
        if (reason === 'evict') this.evictions += value.entries.length
      },
    })
  }

  /** Bytes held, as entries count them (headers included). Never above `maxBytes`. */
  get bytes(): number {
    return this.#lru.calculatedSize
  }

  /** Responses stored, every variant counted. */
  get entries(): number {
    return this.#entries
  }

  /**
   * The newest stored variant of `key` that `headers` select (RFC 9111 §4.1: of several that
   * match, the most recent), and marks the URL as just used.
   */
  find(key: string, headers: IncomingHttpHeaders): Entry | undefined {
    const variants = this.#lru.get(key)
    if (variants === undefined) return undefined
    const { entries } = variants
    // The common case: one response, which varies on nothing.
    const first = entries[0] as Entry
    if (entries.length === 1 && first.varyNames.length === 0) return first
    for (const e of entries) if (variantKey(e.varyNames, headers) === e.variantKey) return e
    return undefined
  }

  /**
   * Stores `entry` under `key`: in place of the variant with the same selection, else as the
   * newest, dropping the oldest past `maxVariants`. A response whose `Vary` names other headers
   * than the stored ones replaces them all: the origin changed how it negotiates, and an old
   * variant that varies on less would answer requests the new ones are meant for.
   * Returns false when the entry alone is larger than the budget (nothing is stored).
   */
  put(key: string, entry: Entry): boolean {
    if (entry.size > this.maxBytes) return false
    const old = this.#lru.peek(key)?.entries ?? []
    const names = entry.varyNames.join(',')
    const kept = old.filter(e => e.varyNames.join(',') === names && e.variantKey !== entry.variantKey).slice(0, this.maxVariants - 1)
    this.#set(key, [entry, ...kept])
    return true
  }

  /** Removes one stored variant, if it is still there. */
  remove(key: string, entry: Entry): void {
    const old = this.#lru.peek(key)
    if (old === undefined || !old.entries.includes(entry)) return
    const kept = old.entries.filter(e => e !== entry)
    if (kept.length === 0) this.#lru.delete(key)
    else this.#set(key, kept)
  }

  /** Removes every variant of `key`; returns how many there were. */
  delete(key: string): number {
    const n = this.#lru.peek(key)?.entries.length ?? 0
    this.#lru.delete(key)
    return n
  }

  /** Removes every key whose request target `matches`, under any Host; returns the responses removed. */
  purge(matches: (target: string) => boolean): number {
    let n = 0
    // Keys first: deleting while iterating would skip some.
    for (const key of [...this.#lru.keys()]) if (matches(targetOf(key))) n += this.delete(key)
    return n
  }

  /** Removes everything; returns the responses removed. */
  clear(): number {
    const n = this.#entries
    this.#lru.clear()
    return n
  }

  /** Sets a URL's variants, dropping the oldest until they fit the budget together (each does alone). */
  #set(key: string, entries: Entry[]): void {
    let size = 0
    for (const e of entries) size += e.size
    while (size > this.maxBytes) size -= (entries.pop() as Entry).size
    this.#entries += entries.length
    this.#lru.set(key, { entries, size })
  }
}
