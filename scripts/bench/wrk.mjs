// Runs wrk and reads its report. wrk prints figures with units (850.00us, 1.20ms, 2.00s); all
// times here are converted to milliseconds.

import { spawn } from 'node:child_process'

/** Beyond its -d, wrk gets this long (its own --timeout is 2 s per request) before it is killed. */
const GRACE_MS = 15_000
const UNIT_MS = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

const toMs = (value, unit) => Number(value) * UNIT_MS[unit]

/** Parses wrk's output (with --latency). Throws when the figures every run has are missing. */
export function parseWrk(text) {
  const done = /(\d+) requests in ([\d.]+)(us|ms|s|m|h)/.exec(text)
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text)
  if (!done || !rps) throw new Error(`unexpected wrk output: ${JSON.stringify(text.slice(0, 200))}`)
  const pct = p => {
    const m = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+([\\d.]+)(us|ms|s|m|h)`, 'm').exec(text)
    return m ? toMs(m[1], m[2]) : NaN
  }
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text)
  const socketErrors = socket
    ? { connect: +socket[1], read: +socket[2], write: +socket[3], timeout: +socket[4] }
    : { connect: 0, read: 0, write: 0, timeout: 0 }
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(text)?.[1] ?? 0)
  const requests = Number(done[1])
  return {
    requests,
    // What the CPU figure divides by: a proxy that answers errors fast must not look cheap.
    good: requests - non2xx,
    seconds: toMs(done[2], done[3]) / 1000,
    rps: Number(rps[1]),
    p50ms: pct(50),
    p99ms: pct(99),
    non2xx,
    socketErrors,
    errors: non2xx + socketErrors.connect + socketErrors.read + socketErrors.write + socketErrors.timeout,
  }
}

/**
 * `wrk -t<threads> -c<connections> -d<seconds>s --latency url`; resolves with the parsed report
 * and wrk's text. `onChild` receives the process, so the caller can kill it on Ctrl-C.
 */
export function runWrk(url, { threads = 1, connections, seconds, cpus, onChild = () => {} }) {
  const args = [`-t${threads}`, `-c${connections}`, `-d${seconds}s`, '--latency', url]
  return new Promise((resolve, reject) => {
    const [file, argv] = cpus === undefined ? ['wrk', args] : ['taskset', ['-c', cpus, 'wrk', ...args]]
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    onChild(child)
    let out = ''
    let err = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + GRACE_MS)
    child.once('error', e => {
      clearTimeout(timer)
      reject(new Error(`wrk: ${e.message}`))
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal !== null) return reject(new Error(`wrk killed by ${signal} (${seconds}s run, ${GRACE_MS / 1000}s grace)`))
      try {
        resolve({ ...parseWrk(out), command: `wrk ${args.join(' ')}`, text: out })
      } catch (e) {
        reject(new Error(`wrk exited with code ${code}: ${(err || out).trim().split('\n').slice(-1)[0] ?? e.message}`))
      }
    })
  })
}
