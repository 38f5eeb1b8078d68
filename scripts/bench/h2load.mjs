// Runs h2load (Debian's nghttp2-client), the HTTP/2 counterpart of wrk, and reads its report into
// the shape runWrk gives, so that an h2 row sits in the same table. h2load reports a mean, not
// percentiles: p50 holds the mean request time and p99 is left out (NaN), which the table shows as -.

import { spawn } from 'node:child_process'

/** Beyond its -D, h2load gets this long before it is killed. */
const GRACE_MS = 15_000
const UNIT_MS = { us: 0.001, ms: 1, s: 1000 }

/** Parses h2load's report. Throws when the lines every run prints are missing. */
export function parseH2load(text) {
  const finished = /finished in ([\d.]+)s, ([\d.]+) req\/s/.exec(text)
  const requests = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(
    text,
  )
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(text)
  if (!finished || !requests || !codes) throw new Error(`unexpected h2load output: ${JSON.stringify(text.slice(-300))}`)
  const mean = /time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)/.exec(text)
  const done = Number(requests[3])
  const good = Number(codes[1]) + Number(codes[2])
  const non2xx = Number(codes[3]) + Number(codes[4])
  const socketErrors = { connect: 0, read: Number(requests[6]), write: 0, timeout: Number(requests[7]) }
  return {
    requests: done,
    good,
    seconds: Number(finished[1]),
    rps: Number(finished[2]),
    p50ms: mean ? Number(mean[1]) * UNIT_MS[mean[2]] : NaN,
    p99ms: NaN,
    non2xx,
    socketErrors,
    errors: non2xx + Number(requests[5]) + socketErrors.read + socketErrors.timeout,
  }
}

/**
 * `h2load -t1 -c<clients> -m<streams> -D<seconds> url`: `clients` connections, each with up to
 * `streams` requests in flight. Resolves like runWrk; `onChild` gets the process for Ctrl-C.
 */
export function runH2load(url, { clients, streams, seconds, cpus, onChild = () => {} }) {
  const args = ['-t1', `-c${clients}`, `-m${streams}`, `-D${seconds}`, url]
  return new Promise((resolve, reject) => {
    const [file, argv] = cpus === undefined ? ['h2load', args] : ['taskset', ['-c', cpus, 'h2load', ...args]]
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] })
    onChild(child)
    let out = ''
    let err = ''
    child.stdout.on('data', d => (out += d))
    child.stderr.on('data', d => (err += d))
    const timer = setTimeout(() => child.kill('SIGKILL'), seconds * 1000 + GRACE_MS)
    child.once('error', e => {
      clearTimeout(timer)
      reject(new Error(`h2load: ${e.message}`))
    })
    child.once('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal !== null) return reject(new Error(`h2load killed by ${signal} (${seconds}s run, ${GRACE_MS / 1000}s grace)`))
      try {
        resolve({ ...parseH2load(out), command: `h2load ${args.join(' ')}`, text: out })
      } catch (e) {
        reject(new Error(`h2load exited with code ${code}: ${(err || out).trim().split('\n').slice(-1)[0] ?? e.message}`))
      }
    })
  })
}
