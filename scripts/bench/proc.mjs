// CPU time and memory of a process tree, from /proc (Linux only).

import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/** Clock ticks per second, the unit of utime/stime in /proc/<pid>/stat. */
const TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
  } catch {
    return 100
  }
})()

/** ppid and utime+stime+cutime+cstime of one process, or undefined when it is gone. */
function stat(pid) {
  let text
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  // Field 2 (comm) is in parentheses and may hold spaces or parentheses: split after the last ')'.
  // f[0] is field 3 (state), so field n is f[n - 3].
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ')
  // cutime/cstime: a child reaped between two samples moves its time to its parent, so the sum
  // over the tree stays continuous.
  return { ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]) }
}

/**
 * CPU milliseconds used so far by `pid` and every descendant (threads included: a process's stat
 * sums its threads), and the pids counted.
 */
export function treeCpuMs(pid) {
  const all = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const s = stat(name)
    if (s !== undefined) all.set(Number(name), s)
  }
  const children = new Map()
  for (const [p, s] of all) children.set(s.ppid, [...(children.get(s.ppid) ?? []), p])
  let ticks = 0
  const pids = []
  const queue = all.has(pid) ? [pid] : []
  while (queue.length > 0) {
    const p = queue.shift()
    pids.push(p)
    ticks += all.get(p).ticks
    queue.push(...(children.get(p) ?? []))
  }
  return { ms: (ticks * 1000) / TICKS, pids }
}

/** VmRSS and VmHWM (peak RSS) in kB, NaN when the process is gone. */
export function memoryKb(pid) {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = key => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1])
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') }
  } catch {
    return { rss: NaN, hwm: NaN }
  }
}
