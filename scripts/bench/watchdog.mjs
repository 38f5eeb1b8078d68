// Outlives a bench that was killed outright (SIGKILL, OOM): when its IPC channel to the bench
// closes, it kills every process group the bench had started and not yet reaped. nginx's worker
// would otherwise go on holding its port after its master is gone. Started in a group of its own,
// so a terminal's Ctrl-C (which the bench handles) does not end it before the bench has finished.
// It also removes the bench's temp dir (configs, access log), which the bench's own exit handler
// cannot do when it is killed outright.

import { rmSync } from 'node:fs'

const groups = new Set()
let dir
process.on('message', m => {
  if (typeof m?.add === 'number') groups.add(m.add)
  if (typeof m?.remove === 'number') groups.delete(m.remove)
  if (typeof m?.dir === 'string' && /switchyard-bench-[^/]+$/.test(m.dir)) dir = m.dir
})
process.on('SIGINT', () => {})
process.on('disconnect', () => {
  for (const group of groups) {
    try {
      process.kill(-group, 'SIGKILL')
    } catch {
      // Already gone.
    }
  }
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true })
  process.exit(0)
})
