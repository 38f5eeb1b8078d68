/** The demo job type, `report`: it sleeps `ms` and reports progress every 10%. */
import { setTimeout as sleep } from 'node:timers/promises'
import type { JobType } from './types.js'

/** The longest `report` job, in ms: a minute, long enough to watch, short enough to wait for. */
export const REPORT_MAX_MS = 60_000

/**
 * `{"type":"report","ms":2000}`: sleeps 2 s in ten steps, reporting 10%, 20%, … 100%, and
 * answers `{"sleptMs":2000}`. It stands in for slow work a request should not wait for (a
 * PDF, an export, a mail merge).
 */
export const report: JobType = {
  parse(fields) {
    const extra = Object.keys(fields).filter(key => key !== 'ms')
    if (extra.length > 0) return `report takes "type" and "ms" only, not ${extra.map(key => JSON.stringify(key)).join(', ')}`
    const ms = fields.ms
    if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0 || ms > REPORT_MAX_MS) {
      return `ms: ${JSON.stringify(ms) ?? 'missing'} is not a whole number from 0 to ${REPORT_MAX_MS}`
    }
    return { ms }
  },
  async run({ data, progress, signal }) {
    const ms = data.ms as number
    for (let step = 1; step <= 10; step++) {
      await sleep(ms / 10, undefined, { signal })
      await progress(step * 10)
    }
    return { sleptMs: ms }
  },
}
