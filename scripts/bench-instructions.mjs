// `npm run bench:instructions`: user-space instructions per forwarded request, counted by valgrind's
// callgrind, for Switchyard next to plain http-proxy and a node:http pipe. Unlike CPU time on a
// shared machine (±15% between runs here), an instruction count repeats to within a few percent,
// so it can tell a 5% change in the proxy's own work from noise. It counts no kernel work (the
// system calls are the same four per request for every Node proxy) and no waiting.
//
//   npm run bench:instructions
//   npm run bench:instructions -- --requests 2000 --warmup 20000 --also old=/path/to/other/switchyard/cli.js
//   npm run bench:instructions -- --only switchyard,switchyard-least      (also: -no-passive, -hash, -features)
//   npm run bench:instructions -- --only switchyard,switchyard-cache-hit,switchyard-cache-miss,memory-hit   (the edge cache)
//   npm run bench:instructions -- --only switchyard-h2,h2-floor,h2-stream-floor,switchyard-https,https-floor   (TLS, with openssl)
//   npm run bench:instructions -- --only switchyard-h2 --also old-h2=/path/to/other/switchyard/cli.js   (a label ending -h2 or -https: over that)
//
// Each proxy runs under `valgrind --tool=callgrind` in front of the bench's two upstreams (not
// under valgrind). After `--warmup` requests (10 at a time, keep-alive) for the JIT to settle, the
// counters are zeroed, `--requests` requests sent and the counts dumped; that is repeated
// `--repeats` times; the figure is the median of the last three (a count can catch a major
// collection or a deoptimisation), and all are printed. Needs valgrind (apt-get install -y valgrind). Exit 1 on bad flags or no valgrind.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { connect } from 'node:http2'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { freePort } from './bench/children.mjs'
import { which } from './bench/proxies.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const USAGE =
  'usage: npm run bench:instructions -- [--requests 2000] [--warmup 20000] [--repeats 5] [--also label=/path/to/cli.js] [--only label,...]'
const CONCURRENCY = 10
const START_TIMEOUT_MS = 120_000

const say = line => void process.stderr.write(`instructions: ${line}\n`)
const die = line => {
  say(line)
  process.exit(1)
}

let values
try {
  ;({ values } = parseArgs({
    options: {
      requests: { type: 'string', default: '2000' },
      // What the figures in docs/performance.md took: with 8,000 and 3, counts still fell between repeats.
      warmup: { type: 'string', default: '20000' },
      repeats: { type: 'string', default: '5' },
      also: { type: 'string', multiple: true, default: [] },
      only: { type: 'string' },
    },
  }))
} catch (err) {
  die(`${err.message.split('\n')[0]} (${USAGE})`)
}
const whole = (name, min, max) => {
  const n = Number(values[name])
  if (!/^\d+$/.test(values[name]) || n < min || n > max)
    die(`--${name} ${JSON.stringify(values[name])}: give a whole number from ${min} to ${max} (${USAGE})`)
  return n
}
const requests = whole('requests', 100, 1_000_000)
const warmup = whole('warmup', 0, 10_000_000)
const repeats = whole('repeats', 1, 20)
const extra = values.also.map(spec => {
  const m = /^([\w-]+)=(.+)$/.exec(spec)
  if (!m) die(`--also ${JSON.stringify(spec)}: give label=/path/to/switchyard/cli.js (${USAGE})`)
  return { label: m[1], cli: resolve(m[2]) }
})
if (which('valgrind') === undefined) die('valgrind not found: install it with apt-get install -y valgrind')
const callgrindControl = which('callgrind_control')
if (callgrindControl === undefined) die('callgrind_control not found: it comes with valgrind')

const tmp = mkdtempSync(join(tmpdir(), 'switchyard-instructions-'))
const children = new Set()
process.on('exit', () => {
  for (const c of children) c.kill('SIGKILL')
  rmSync(tmp, { recursive: true, force: true })
})
process.on('SIGINT', () => process.exit(130))

const backends = spawn(process.execPath, [join(root, 'scripts/bench/backends.mjs')], { stdio: ['pipe', 'pipe', 'inherit'] })
children.add(backends)
const ports = await new Promise((resolve, reject) => {
  backends.stdout.on('data', d => {
    const m = /^ports (\d+) (\d+)/m.exec(String(d))
    if (m) resolve([m[1], m[2]])
  })
  backends.once('exit', () => reject(new Error('the upstreams exited')))
})
const targets = ports.map(p => `127.0.0.1:${p}`)

/** A new URL per request, for the cache-miss row: each is a key the cache has never seen. */
let missed = 0
const missPath = () => `/miss/${++missed}`

/**
 * `count` GETs to `port` (of `path()`, `/` unless a row says otherwise), CONCURRENCY at a time over
 * keep-alive connections; rejects on any non-200. `scheme`: `http`, `https` (TLS 1.3, HTTP/1.1;
 * the certificate is the run's own, not checked) or `h2` (CONCURRENCY streams on one connection).
 */
function load(port, count, path = () => '/', scheme = 'http') {
  // Nothing to send (--warmup 0): nothing would ever resolve the promises below.
  if (count === 0) return Promise.resolve()
  if (scheme === 'h2') return loadH2(port, count, path)
  const tls = scheme === 'https'
  const agent = tls
    ? new HttpsAgent({ keepAlive: true, maxSockets: CONCURRENCY, rejectUnauthorized: false })
    : new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
  const send = tls ? httpsRequest : request
  let sent = 0
  let done = 0
  return new Promise((resolve, reject) => {
    const one = () => {
      if (sent >= count) return
      sent++
      send({ host: '127.0.0.1', port, path: path(), agent }, res => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`))
        res.resume()
        res.on('end', () => {
          if (++done === count) {
            agent.destroy()
            resolve()
          } else one()
        })
      })
        .on('error', reject)
        .end()
    }
    for (let i = 0; i < Math.min(CONCURRENCY, count); i++) one()
  })
}

/** `load` over HTTP/2: CONCURRENCY streams at a time on one connection, as a browser multiplexes. */
function loadH2(port, count, path) {
  const session = connect(`https://127.0.0.1:${port}`, { rejectUnauthorized: false })
  let sent = 0
  let done = 0
  return new Promise((resolve, reject) => {
    const fail = err => {
      session.destroy()
      reject(err)
    }
    session.on('error', fail)
    const one = () => {
      if (sent >= count) return
      sent++
      const stream = session.request({ ':path': path() })
      stream.on('response', headers => {
        if (headers[':status'] !== 200) fail(new Error(`status ${headers[':status']}`))
      })
      stream.on('error', fail)
      stream.resume()
      stream.on('end', () => {
        if (++done === count) {
          session.close()
          resolve()
        } else one()
      })
      stream.end()
    }
    for (let i = 0; i < Math.min(CONCURRENCY, count); i++) one()
  })
}

/** The TLS rows' certificate, made as `npm start -- --https` and `npm run bench` make theirs (server/self-signed.ts). */
let certificate
async function tlsFiles() {
  if (certificate !== undefined) return certificate
  try {
    const { localCertificate } = await import(join(root, 'packages/balancer/dist/server/self-signed.js'))
    certificate = localCertificate(join(tmp, 'tls'))
  } catch (err) {
    die(`no certificate for the TLS rows: ${err.message}`)
  }
  return certificate
}

async function ready(port, scheme) {
  const start = Date.now()
  while (Date.now() - start < START_TIMEOUT_MS) {
    try {
      await load(port, 1, undefined, scheme)
      return
    } catch {
      await sleep(250)
    }
  }
  throw new Error(`not answering on ${port} after ${START_TIMEOUT_MS / 1000}s`)
}

const control = (pid, ...args) => {
  const r = spawnSync(callgrindControl, [...args, String(pid)], { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`callgrind_control ${args.join(' ')}: ${r.stderr || r.stdout}`)
}

/** Instructions counted in the newest dump of `prefix`. */
function lastDump(prefix) {
  const dir = dirname(prefix)
  const files = readdirSync(dir)
    .filter(f => f.startsWith(`${prefix.slice(dir.length + 1)}.`))
    .sort((a, b) => Number(a.split('.').at(-1)) - Number(b.split('.').at(-1)))
  const text = readFileSync(join(dir, files.at(-1)), 'utf8')
  return Number(/^summary: (\d+)/m.exec(text)?.[1] ?? /^totals: (\d+)/m.exec(text)?.[1])
}

async function measure({ label, args, path, scheme = 'http' }) {
  const port = await freePort()
  // The TLS rows' own port: Switchyard keeps its plain listener too; a floor listens on this one only.
  const tlsPort = scheme === 'http' ? undefined : await freePort()
  const loadPort = tlsPort ?? port
  const out = join(tmp, label)
  // --single-threaded: V8 compiles and collects on the main thread, when the code asks for it
  // rather than when a helper thread gets to it, so the JIT settles after as many requests
  // whatever valgrind's slowdown (with helper threads the counts still fell 14% over the
  // three repeats after 8,000 warm-up requests).
  const child = spawn(
    'valgrind',
    [
      '--tool=callgrind',
      `--callgrind-out-file=${out}`,
      process.execPath,
      '--single-threaded',
      ...args(port, tlsPort, tlsPort === undefined ? {} : await tlsFiles()),
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  )
  children.add(child)
  let log = ''
  child.stderr.on('data', d => (log = (log + d).slice(-2000)))
  try {
    say(`${label}: starting under callgrind (pid ${child.pid})`)
    await ready(loadPort, scheme)
    say(`${label}: ${warmup} warm-up requests`)
    await load(loadPort, warmup, path, scheme)
    const perRequest = []
    for (let i = 0; i < repeats; i++) {
      control(child.pid, '-z')
      await load(loadPort, requests, path, scheme)
      control(child.pid, '-d')
      await sleep(200)
      perRequest.push(lastDump(out) / requests)
      say(`${label}: ${Math.round(perRequest.at(-1)).toLocaleString('en')} instructions per request`)
    }
    return { label, perRequest }
  } catch (err) {
    throw new Error(`${label}: ${err.message}\n${log}`, { cause: err })
  } finally {
    child.kill('SIGKILL')
    children.delete(child)
  }
}

const CLI = join(root, 'packages/balancer/dist/cli.js')
const switchyard =
  (cli, more = ['--quiet']) =>
  port => [cli, '--port', String(port), '--host', '127.0.0.1', ...targets.flatMap(t => ['--upstream', t]), ...more]
const switchyardTls =
  (cli = CLI) =>
  (port, tlsPort, { cert, key }) => {
    return switchyard(cli, ['--quiet', '--https-port', String(tlsPort), '--tls-cert', cert, '--tls-key', key])(port)
  }
/** An `--also` label ending in `-h2` or `-https` is measured over that, as the switchyard-h2 and switchyard-https rows are. */
const schemeOf = label => /-(h2|https)$/.exec(label)?.[1]
const tlsFloor =
  mode =>
  (_port, tlsPort, { cert, key }) => {
    return [join(root, 'scripts/bench/tls-pipe-peer.mjs'), mode, String(tlsPort), cert, key, ...targets.map(t => `http://${t}`)]
  }
const proxies = [
  {
    label: 'http-proxy',
    args: port => [join(root, 'scripts/bench/http-proxy-peer.mjs'), String(port), ...targets.map(t => `http://${t}`)],
  },
  { label: 'node-pipe', args: port => [join(root, 'scripts/bench/pipe-peer.mjs'), String(port), ...targets.map(t => `http://${t}`)] },
  { label: 'switchyard', args: switchyard(CLI) },
  // The edge cache (issue 14): every request a hit on /cacheable, which the backends answer
  // `Cache-Control: public, max-age=600`. Its targets: at most 1.3× the memory-hit floor, at most
  // 0.35× the switchyard row; a miss (a new URL each time) at most 1.15× the switchyard row.
  { label: 'switchyard-cache-hit', args: switchyard(CLI, ['--quiet', '--cache', '64mb']), path: () => '/cacheable' },
  { label: 'switchyard-cache-miss', feature: true, args: switchyard(CLI, ['--quiet', '--cache', '64mb']), path: missPath },
  {
    label: 'memory-hit',
    feature: true,
    args: port => [join(root, 'scripts/bench/memory-hit-peer.mjs'), String(port), `http://${targets[0]}`],
    path: () => '/cacheable',
  },
  // TLS (issue 15), only with --only: Switchyard's HTTPS listener over HTTP/1.1 and over h2, each
  // beside Node's bare https / http2 server piped to the same upstreams (scripts/bench/tls-pipe-peer.mjs).
  // Crypto runs in-process and is counted: the same work in a row and its floor.
  { label: 'switchyard-https', feature: true, scheme: 'https', args: switchyardTls() },
  { label: 'https-floor', feature: true, scheme: 'https', args: tlsFloor('https') },
  { label: 'switchyard-h2', feature: true, scheme: 'h2', args: switchyardTls() },
  { label: 'h2-floor', feature: true, scheme: 'h2', args: tlsFloor('h2') },
  // The same over Node's core HTTP/2 API, the stream alone, with no compat request and response.
  { label: 'h2-stream-floor', feature: true, scheme: 'h2', args: tlsFloor('h2-stream') },
  // Asked for by name: measured whatever --only says.
  ...extra.map(({ label, cli }) => {
    const scheme = schemeOf(label)
    return { label, also: true, scheme, args: scheme === undefined ? switchyard(cli) : switchyardTls(cli) }
  }),
  // One feature each, only with --only: what it adds to the switchyard row.
  { label: 'switchyard-no-passive', feature: true, args: switchyard(CLI, ['--quiet', '--max-fails', '0']) },
  { label: 'switchyard-least', feature: true, args: switchyard(CLI, ['--quiet', '--policy', 'least-requests']) },
  { label: 'switchyard-hash', feature: true, args: switchyard(CLI, ['--quiet', '--policy', 'hash']) },
  { label: 'switchyard-features', feature: true, args: switchyard(CLI, ['--admin-port', '0', '--access-log', join(tmp, 'access.log')]) },
]
const only = values.only?.split(',')
const unknown = only?.filter(l => !proxies.some(p => p.label === l)) ?? []
if (unknown.length > 0) die(`--only ${JSON.stringify(unknown.join(','))}: not one of ${proxies.map(p => p.label).join(', ')}`)
const results = []
for (const p of proxies.filter(p => p.also || (only === undefined && !p.feature) || only?.includes(p.label))) results.push(await measure(p))
const figure = r => {
  const last = r.perRequest.slice(-3).sort((a, b) => a - b)
  return last[Math.floor((last.length - 1) / 2)]
}
const base = figure(results[0])
process.stdout.write(`## Instructions per forwarded request (callgrind, user space), ${new Date().toISOString()}\n\n`)
process.stdout.write(
  `${warmup} warm-up requests, then ${repeats} × ${requests} counted, ${CONCURRENCY} at a time; the figure is the median of the last three counts.\n\n`,
)
process.stdout.write(`| proxy | instructions / request | × ${results[0].label} | every count |\n|---|--:|--:|---|\n`)
for (const r of results) {
  const last = figure(r)
  process.stdout.write(
    `| ${r.label} | ${Math.round(last).toLocaleString('en')} | ${(last / base).toFixed(2)}× | ${r.perRequest.map(x => Math.round(x / 1000)).join(', ')} k |\n`,
  )
}
process.exit(0)
