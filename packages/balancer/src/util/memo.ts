// A function of one header value, computed once per distinct value, for the hot path.

/**
 * `compute`, remembered for the first `max` distinct values it is called with. Meant for header
 * values an upstream or client sends the same on almost every message (`Connection:
 * keep-alive`, `Keep-Alive: timeout=5`), where a split or a regular expression per message is
 * the cost. Past `max` values, a new one is computed each time and not kept, so that a peer
 * sending a new value each time cannot grow it. `compute` must not return undefined (that
 * reads as "not kept yet").
 */
export function memoized<T extends NonNullable<unknown>>(compute: (value: string) => T, max: number): (value: string) => T {
  const kept = new Map<string, T>()
  return value => {
    let result = kept.get(value)
    if (result === undefined) {
      result = compute(value)
      if (kept.size < max) kept.set(value, result)
    }
    return result
  }
}
