// New TLS connections per second that one core of a proxy sustains (issue 15): wrk with
// `Connection: close`, so every request opens a new connection with a full handshake (wrk resumes
// no session), against a proxy pinned to one core. The proxy's process-tree CPU over the run,
// divided by the connections it served, is its cost per connection; one core's second over that
// cost is the rate. Each connection also carries one forwarded request, as a real one would.

import { setTimeout as sleep } from 'node:timers/promises'
import { treeCpuMs } from './proc.mjs'
import { runWrk } from './wrk.mjs'

/** Lets the proxy finish closing the last connections within the measured CPU. */
const AFTER_RUN_MS = 150

/**
 * Measures each of `rows` ({ id, label, port, child }) once; resolves with
 * [{ id, label, connections, cpuMs, perCore, errors }], a failed one with `error` instead.
 */
export async function measureHandshakes(rows, { seconds, connections, cpus, onChild, progress }) {
  const out = []
  for (const p of rows) {
    try {
      const before = treeCpuMs(p.child.pid)
      const w = await runWrk(`https://127.0.0.1:${p.port}/`, { connections, seconds, cpus, onChild, headers: ['Connection: close'] })
      await sleep(AFTER_RUN_MS)
      const cpuMs = treeCpuMs(p.child.pid).ms - before.ms
      const perCore = cpuMs > 0 ? w.good / (cpuMs / 1000) : NaN
      out.push({ id: p.id, label: p.label, connections: w.good, cpuMs, perCore, rps: w.rps, errors: w.errors })
      progress(
        `handshakes ${p.label}: ${w.rps.toFixed(0)} new connections/s, ${perCore.toFixed(0)} per core-second of its CPU${w.errors > 0 ? `, ${w.errors} errors` : ''}`,
      )
    } catch (err) {
      out.push({ id: p.id, label: p.label, error: err.message })
      progress(`handshakes ${p.label}: ${err.message}`)
    }
  }
  return out
}
