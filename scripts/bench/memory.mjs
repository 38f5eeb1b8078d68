// The memory phase: a fresh Switchyard (one process), its RSS with no client, with COUNT idle
// keep-alive clients, and after they are gone.

import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { launch, stop, why } from './children.mjs'
import { memoryKb } from './proc.mjs'
import { startSwitchyard } from './proxies.mjs'
import { runWrk } from './wrk.mjs'

const OPEN_TIMEOUT_MS = 120_000
/** RSS counts as settled when it moved less than this over SETTLE_SAMPLES samples 250 ms apart. */
const SETTLE_FRACTION = 0.01
const SETTLE_SAMPLES = 4
const SETTLE_MAX_MS = 5000
/**
 * Switchyard gives memory back once a surge of connections is over (--reclaim-after): five full
 * collections two seconds apart, the first two seconds after the count falls. Measure after them.
 */
const RECLAIM_WAIT_MS = 11_000

/** Resolves with the next IPC message of `child` that `pick` accepts, or rejects on exit or time. */
function message(child, pick, timeoutMs) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no answer from ${child.benchName} in ${timeoutMs / 1000}s`)), timeoutMs)
    const onMessage = m => {
      if (!pick(m)) return
      clearTimeout(timer)
      child.off('message', onMessage)
      resolve(m)
    }
    child.on('message', onMessage)
    void child.exited.then(r => {
      clearTimeout(timer)
      reject(new Error(why(child, `${child.benchName} ${r.how}`)))
    })
  })
}

/** Samples RSS every 250 ms until it is stable (bounded by SETTLE_MAX_MS); returns the samples. */
async function settle(pid) {
  const samples = [memoryKb(pid).rss]
  const start = Date.now()
  while (Date.now() - start < SETTLE_MAX_MS) {
    await sleep(250)
    samples.push(memoryKb(pid).rss)
    const recent = samples.slice(-SETTLE_SAMPLES)
    if (recent.length === SETTLE_SAMPLES && Math.max(...recent) - Math.min(...recent) <= SETTLE_FRACTION * Math.max(...recent)) break
  }
  return samples
}

/** Runs the phase; `progress(line)` reports. Resolves with the figures (kB) or throws one line. */
export async function measureMemory(ctx, { count, connections, progress, onWrk }) {
  const { child, port } = await startSwitchyard(ctx)
  const pid = child.pid
  let clients
  try {
    // Warm: JIT-compiled paths and pooled upstream sockets, as in a balancer that has been serving.
    await runWrk(`http://127.0.0.1:${port}/`, { connections, seconds: 1, cpus: ctx.loadCpus, onChild: onWrk })
    const baseline = (await settle(pid)).at(-1)
    progress(`memory: Switchyard pid ${pid} RSS ${(baseline / 1024).toFixed(1)} MB; opening ${count} keep-alive connections`)
    clients = launch(
      'idle-clients',
      process.execPath,
      [fileURLToPath(new URL('./idle-clients.mjs', import.meta.url)), String(port), String(count)],
      { ipc: true },
    )
    const up = await message(clients, m => m?.opened !== undefined, OPEN_TIMEOUT_MS)
    const withOpen = await settle(pid)
    const peak = Math.max(...withOpen)
    progress(
      `memory: ${up.opened} open (${up.failed} failed${up.firstError ? `, first: ${up.firstError}` : ''}); RSS ${(peak / 1024).toFixed(1)} MB; closing them`,
    )
    clients.send('close')
    const down = await message(clients, m => m?.closed !== undefined, 10_000)
    await sleep(RECLAIM_WAIT_MS)
    const after = await settle(pid)
    return {
      mode: 'each connection sent one complete GET / HTTP/1.1 (keep-alive), read its 200, then stayed idle',
      requested: count,
      opened: up.opened,
      failed: up.failed,
      firstError: up.firstError ?? null,
      closedByServerWhileOpen: down.closedByServer,
      baselineKb: baseline,
      peakKb: peak,
      afterKb: after.at(-1),
      hwmKb: memoryKb(pid).hwm,
      samplesKb: { withOpen, after },
    }
  } finally {
    if (clients !== undefined) await stop(clients)
    await stop(child)
  }
}
