// `npm run bench`: what a forwarded request costs, Switchyard next to nginx, HAProxy and plain
// http-proxy, measured in one interleaved run on this machine.
//
//   npm run bench                                         3 rounds of 5 s at 50 connections, then memory
//   npm run bench -- --rounds 2 --duration 4 --connections 100 --out /tmp/results --no-memory
//   npm run bench -- --only nginx,node-pipe,switchyard                  some of the proxies, by id
//   npm run bench -- --only switchyard --also before=/path/to/other/cli.js   another Switchyard build, interleaved
//     (a label ending in -h2 or -https measures that build over h2 or HTTPS, beside switchyard-h2 or -https)
//
// Two upstreams (scripts/bench/backends.mjs, a process of their own) answer GET / with a fixed body.
// With two or more cores and taskset, each proxy runs pinned to the last core and wrk and the
// upstreams to the others (--no-pin: all share every core); --workers 2 is never pinned.
// Every proxy runs in its own process group on 127.0.0.1 in front of both, round-robin, keep-alive
// on both sides. After a short warm-up of each, every round runs wrk against each proxy in turn (the
// order rotates per round), then a c=1 run for latency. The CPU a proxy's process tree used during
// the main run (utime+stime from /proc, its descendants included, never wrk's nor the upstreams'),
// divided by the 2xx/3xx answers wrk counted, is its CPU per request. On a shared machine absolute
// figures drift; each round's figures are compared with the baseline's in that same round.
//
// Unless --no-tls, the HTTPS rows too (issue 15): nginx, Node's bare https server and Switchyard
// over TLS 1.3 with one ECDSA P-256 certificate made for the run (openssl), measured with wrk; and,
// when h2load is installed (nghttp2-client), the same over HTTP/2, h2load -c N/10 -m 10. Then new
// TLS connections per second per core of each HTTPS row (scripts/bench/handshakes.mjs).
//
// Then, unless --no-memory, a fresh Switchyard's RSS with no client, with 10,000 idle keep-alive
// clients (scripts/bench/idle-clients.mjs) and after they closed.
//
// Progress goes to stderr; the table to stdout; raw rounds, machine info and a chart to
// <out>/<date>.json and .svg. Exit 0 when something was measured; 1 on bad flags, no wrk, a failed
// build or no upstreams. Every child is killed on exit, on Ctrl-C and on errors.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, platform, release, tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { killAll, launch, startWatchdog, stop, why } from './bench/children.mjs'
import { runH2load } from './bench/h2load.mjs'
import { measureHandshakes } from './bench/handshakes.mjs'
import { measureMemory } from './bench/memory.mjs'
import { treeCpuMs } from './bench/proc.mjs'
import { proxies, versionOf, which } from './bench/proxies.mjs'
import { pairedCpuRatio, summarize, svg, table } from './bench/report.mjs'
import { runWrk } from './bench/wrk.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = join(root, 'packages/balancer/dist/cli.js')
const USAGE =
  'usage: npm run bench -- [--rounds 3] [--duration 5] [--connections 50] [--out bench-results] [--no-memory] [--no-tls] [--no-pin] [--only nginx,switchyard,...] [--also label=/path/to/cli.js]'
const WARMUP_SECONDS = 1
/** Length of the c=1 latency run; one connection settles its p50 within a couple of seconds. */
const C1_SECONDS = 2
const IDLE_CLIENTS = 10_000
/** After wrk exits, the proxy still closes its 50 connections: let that land in this run's CPU. */
const AFTER_RUN_MS = 150
const BUILD_TIMEOUT_MS = 300_000
const START_TIMEOUT_MS = 10_000

const progress = line => void process.stderr.write(`bench: ${line}\n`)
const die = message => {
  progress(message)
  process.exit(1)
}

function options() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        rounds: { type: 'string', default: '3' },
        duration: { type: 'string', default: '5' },
        connections: { type: 'string', default: '50' },
        out: { type: 'string', default: 'bench-results' },
        'no-memory': { type: 'boolean', default: false },
        'no-tls': { type: 'boolean', default: false },
        'no-pin': { type: 'boolean', default: false },
        only: { type: 'string' },
        also: { type: 'string', multiple: true, default: [] },
        help: { type: 'boolean', default: false },
      },
    }))
  } catch (err) {
    die(`${err.message.split('\n')[0]} (${USAGE})`)
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const whole = (name, text, min, max) => {
    const m = /^(\d+)$/.exec(text)
    if (!m || Number(m[1]) < min || Number(m[1]) > max)
      die(`--${name} ${JSON.stringify(text)}: give a whole number from ${min} to ${max} (${USAGE})`)
    return Number(m[1])
  }
  return {
    rounds: whole('rounds', values.rounds, 1, 50),
    // wrk takes whole seconds; "4s" is accepted as well as "4".
    seconds: whole('duration', values.duration.replace(/s$/, ''), 1, 600),
    connections: whole('connections', values.connections, 1, 10_000),
    out: resolve(values.out),
    memory: !values['no-memory'],
    tls: !values['no-tls'],
    pin: !values['no-pin'],
    only: values.only === undefined ? undefined : values.only.split(',').map(id => id.trim()),
    // Other Switchyard builds (the commit before a change, say), each measured in the same rounds as this one.
    also: values.also.map(spec => {
      const m = /^([\w-]+)=(.+)$/.exec(spec)
      if (!m) die(`--also ${JSON.stringify(spec)}: give label=/path/to/switchyard/cli.js (${USAGE})`)
      if (!existsSync(m[2])) die(`--also ${JSON.stringify(spec)}: ${m[2]} does not exist (${USAGE})`)
      return { label: m[1], cli: resolve(m[2]) }
    }),
  }
}

const opts = options()
const startedAt = Date.now()
const loadavgStart = loadavg()
const date = new Date()
const wrk = which('wrk')
if (wrk === undefined) die('wrk not found: install it with apt-get install -y wrk')
if (!existsSync(CLI)) {
  progress(`${CLI} is missing: building with npx tsc -b`)
  const built = spawnSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit', timeout: BUILD_TIMEOUT_MS })
  if (built.status !== 0 || !existsSync(CLI))
    die(`npx tsc -b failed (${built.error?.message ?? `status ${built.status}`}); fix the build first`)
}
// Each proxy on a core of its own (the last), wrk and the upstreams on the others, so that a
// proxy's CPU per request is not inflated by sharing its core with the load it is measured under.
const cores = cpus().length
const taskset = which('taskset')
const pinned = opts.pin && cores >= 2 && taskset !== undefined
const proxyCpus = pinned ? String(cores - 1) : undefined
const loadCpus = pinned ? (cores === 2 ? '0' : `0-${cores - 2}`) : undefined
if (opts.pin && !pinned) progress(cores < 2 ? 'one core: nothing pinned' : 'taskset not found (util-linux): nothing pinned')
else if (pinned) progress(`pinning each proxy to CPU ${proxyCpus}, wrk and the upstreams to CPU ${loadCpus} (--no-pin: let them share)`)
const nginx = which('nginx')
const haproxy = which('haproxy')
if (nginx === undefined) progress('nginx not found: install it with apt-get install -y nginx (ratios are then against http-proxy)')
if (haproxy === undefined) progress('haproxy not found: skipping HAProxy (apt-get install -y haproxy adds it)')
const help = spawnSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 10_000 })
const workers = /--workers\b/.test(help.stdout ?? '')
progress(
  workers ? 'switchyard --help lists --workers: measuring --workers 2 too' : 'switchyard --help has no --workers: that row is skipped',
)

// --- clean-up: whatever happens, no child outlives us --------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'switchyard-bench-'))
const wrks = new Set()
const onWrk = child => {
  wrks.add(child)
  child.once('exit', () => wrks.delete(child))
}
process.on('exit', () => {
  for (const child of wrks) child.kill('SIGKILL')
  killAll()
  rmSync(tmp, { recursive: true, force: true })
})
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => {
    progress(`${signal}: killing every child and exiting without a report`)
    process.exit(code)
  })
}
startWatchdog(tmp)

// --- upstreams and proxies -------------------------------------------------------------------

const backends = launch('backends', process.execPath, [join(root, 'scripts/bench/backends.mjs')], { stdin: 'pipe', cpus: loadCpus })
const ports = await new Promise(resolve => {
  const timer = setTimeout(() => die(`the upstreams printed no ports within ${START_TIMEOUT_MS / 1000}s`), START_TIMEOUT_MS)
  // Without upstreams no figure means anything: their exit ends the bench, unless we stopped them.
  void backends.exited.then(r => backends.stopped || die(`the upstreams ${r.how}: ${why(backends, r.how)}`))
  backends.onLine = line => {
    if (!/^ports \d+ \d+$/.test(line)) return
    clearTimeout(timer)
    resolve(line.split(' ').slice(1).map(Number))
  }
})
progress(`upstreams on 127.0.0.1:${ports.join(' and 127.0.0.1:')} (pid ${backends.pid})`)

/** The certificate of the HTTPS rows, made as `npm start -- --https` makes one; none: no TLS rows. */
async function benchCertificate() {
  if (!opts.tls) return undefined
  try {
    const { localCertificate } = await import(join(root, 'packages/balancer/dist/server/self-signed.js'))
    const { cert, key } = localCertificate(join(tmp, 'tls'))
    return { cert, key }
  } catch (err) {
    progress(`no HTTPS rows: ${err.message}`)
    return undefined
  }
}
const tls = await benchCertificate()
const h2load = which('h2load') !== undefined
if (tls !== undefined && !h2load) progress('h2load not found: no h2 rows (apt-get install -y nghttp2-client adds them)')
const ctx = { root, dir: tmp, backends: ports, connections: opts.connections, cli: CLI, proxyCpus, loadCpus, tls, h2load }
const known = proxies(ctx, { nginx, haproxy, workers, also: opts.also })
const unknown = opts.only?.filter(id => !known.some(p => p.id === id)) ?? []
if (unknown.length > 0) die(`--only ${JSON.stringify(unknown.join(','))}: not a proxy here; choose from ${known.map(p => p.id).join(', ')}`)
// Builds given with --also are measured whatever --only says: they were asked for by name.
const all = known.filter(p => p.also || opts.only === undefined || opts.only.includes(p.id)).map(p => ({ ...p, rounds: [] }))
const live = []
for (const p of all) {
  try {
    Object.assign(p, await p.start())
    live.push(p)
    progress(`${p.label} forwarding on 127.0.0.1:${p.port} (pid ${p.child.pid})`)
    void p.child.exited.then(r => {
      if (!p.stopped) p.failed ??= `${r.how} during the run`
    })
  } catch (err) {
    p.failed = `failed to start: ${err.message}`
    progress(`${p.label} failed to start, going on without it: ${err.message}`)
  }
}
if (live.length === 0) die('no proxy started; nothing to measure')
const baseline = live.find(p => p.id === 'nginx') ?? live.find(p => p.id === 'http-proxy') ?? live[0]
if (nginx !== undefined && baseline.id !== 'nginx') {
  const why = all.some(p => p.id === 'nginx') ? 'is installed but did not start' : 'is left out by --only'
  progress(`nginx ${why}: ratios are against ${baseline.label}`)
}

const perRun = opts.seconds + C1_SECONDS + 0.5
progress(
  `${opts.rounds} round(s) × ${live.length} proxies × (${opts.seconds}s at c=${opts.connections} + ${C1_SECONDS}s at c=1): about ${Math.round(live.length * (WARMUP_SECONDS + opts.rounds * perRun))}s${opts.memory ? ', then the memory phase' : ''}`,
)
/**
 * One load run against `p`: wrk, or h2load for the h2 rows, with `connections` requests in flight
 * (h2load: a tenth as many connections, ten streams each; one of one for c=1).
 */
function load(p, connections, seconds) {
  // The cache rows ask for their own path (and the miss row for a new URL each time, by script).
  const url = `${p.scheme ?? 'http'}://127.0.0.1:${p.port}${p.path ?? '/'}`
  if (p.tool !== 'h2load') return runWrk(url, { connections, seconds, cpus: loadCpus, script: p.script, onChild: onWrk })
  const clients = Math.max(1, Math.round(connections / 10))
  return runH2load(url, { clients, streams: Math.max(1, Math.round(connections / clients)), seconds, cpus: loadCpus, onChild: onWrk })
}

for (const p of live) {
  progress(`warming up ${p.label} (${WARMUP_SECONDS}s)`)
  await load(p, opts.connections, WARMUP_SECONDS).catch(err => progress(`warm-up of ${p.label}: ${err.message}`))
}

// --- the rounds ------------------------------------------------------------------------------

/** One measured run of one proxy: wrk at c=N with the tree's CPU around it, then wrk at c=1. */
async function measure(p, round) {
  const load1 = loadavg()[0]
  const before = treeCpuMs(p.child.pid)
  const main = await load(p, opts.connections, opts.seconds)
  await sleep(AFTER_RUN_MS)
  const after = treeCpuMs(p.child.pid)
  const cpuMs = after.ms - before.ms
  main.cpuMs = cpuMs
  main.cpuUsPerRequest = main.good > 0 ? (cpuMs * 1000) / main.good : NaN
  main.pids = [...new Set([...before.pids, ...after.pids])]
  const c1 = await load(p, 1, C1_SECONDS)
  return { round, load1, main, c1 }
}

const errorsOf = w => (w.errors === 0 ? '' : `, ${w.non2xx} non-2xx, ${w.errors - w.non2xx} socket errors`)
for (let round = 1; round <= opts.rounds; round++) {
  const order = live.map((_, i) => live[(i + round - 1) % live.length])
  for (const [i, p] of order.entries()) {
    if (p.failed !== undefined) continue
    const where = `round ${round}/${opts.rounds} [${i + 1}/${order.length}] ${p.label}`
    try {
      const r = await measure(p, round)
      p.rounds.push(r)
      const m = r.main
      progress(
        `${where}: ${m.rps.toFixed(0)} req/s, p50 ${m.p50ms.toFixed(2)} ms, p99 ${m.p99ms.toFixed(2)} ms, ` +
          `${m.cpuUsPerRequest.toFixed(1)} µs CPU/req over ${m.pids.length} process(es)${errorsOf(m)}; c=1 p50 ${r.c1.p50ms.toFixed(3)} ms${errorsOf(r.c1)}`,
      )
    } catch (err) {
      progress(`${where}: ${err.message}${p.failed ? ` (${p.label} ${p.failed}; dropped from later rounds)` : ''}`)
    }
  }
}
const loadAfterRounds = loadavg()
const handshakeRows = live.filter(p => ['nginx-https', 'switchyard-https', 'node-https-pipe'].includes(p.id) && p.failed === undefined)
const handshakes =
  handshakeRows.length === 0
    ? []
    : await measureHandshakes(handshakeRows, {
        seconds: opts.seconds,
        connections: opts.connections,
        cpus: loadCpus,
        onChild: onWrk,
        progress,
      })
for (const p of live) {
  p.stopped = true
  await stop(p.child)
}

let memory = null
if (opts.memory) {
  try {
    memory = await measureMemory(ctx, { count: IDLE_CLIENTS, connections: opts.connections, progress, onWrk })
  } catch (err) {
    progress(`memory phase failed: ${err.message}`)
    memory = { error: err.message }
  }
}
backends.stopped = true
await stop(backends)

// --- the report ------------------------------------------------------------------------------

const summaries = all.map(p => summarize(p, baseline))
const out = []
const print = line => out.push(line)
const cpu = cpus()
const machine = {
  cpuModel: cpu[0]?.model.trim() ?? 'unknown',
  cores: cpu.length,
  loadavgStart,
  loadavgAfterRounds: loadAfterRounds,
  node: process.version,
  os: `${platform()} ${release()}`,
  nginx: versionOf(nginx, ['-v']),
  haproxy: versionOf(haproxy, ['-v']),
  wrk: versionOf(wrk, ['-v']),
  h2load: versionOf(which('h2load'), ['--version']),
  openssl: versionOf(which('openssl'), ['version']),
  date: date.toISOString(),
  pinned: pinned ? { proxy: proxyCpus, load: loadCpus } : null,
}
print(
  `## Switchyard bench: ${opts.rounds} rounds of ${opts.seconds}s at c=${opts.connections} (wrk -t1), c=1 for ${C1_SECONDS}s; medians over rounds`,
)
print('')
for (const line of table(summaries, baseline.label)) print(line)
print('')
print(
  `CPU µs/req: CPU time of the proxy's process tree during the c=${opts.connections} run / 2xx-3xx answers. ` +
    `× ${baseline.label} and added latency: per round against ${baseline.label} in the same round, then the median.`,
)
const byId = id => summaries.find(s => s.id === id && s.rounds > 0)
const quiet = byId('switchyard')
// Each of these against another proxy, paired round by round (pairedCpuRatio).
const rawOf = id => all.find(p => p.id === id && p.rounds.length > 0)
const versus = (id, baseId) => {
  const [a, b] = [rawOf(id), rawOf(baseId)]
  if (a === undefined || b === undefined) return undefined
  const r = pairedCpuRatio(a, b)
  return `${r.median.toFixed(2)}× (${r.min.toFixed(2)}–${r.max.toFixed(2)} over ${r.n} rounds)`
}
const comparisons = [
  ['switchyard', 'http-proxy', 'Switchyard vs stock http-proxy'],
  ['switchyard', 'node-pipe', 'Switchyard vs the node:http pipe with no library'],
  ['switchyard-features', 'switchyard', 'admin listener + access log on vs off'],
  ['switchyard', 'switchyard-no-passive', 'passive health on vs off (--max-fails 0)'],
  ['switchyard-least', 'switchyard', 'least-requests vs round-robin'],
  ['switchyard-hash', 'switchyard', 'hash (client IP: one upstream takes every wrk connection) vs round-robin'],
  ['switchyard', 'nginx', 'Switchyard vs nginx, plain HTTP'],
  ['switchyard-https', 'nginx-https', 'Switchyard HTTPS vs nginx HTTPS'],
  ['node-https-pipe', 'nginx-https', "Node's https floor vs nginx HTTPS"],
  ['switchyard-https', 'node-https-pipe', "Switchyard HTTPS vs Node's https floor"],
  ['switchyard-h2', 'nginx-h2', 'Switchyard h2 vs nginx h2'],
  ['node-h2-pipe', 'nginx-h2', "Node's http2 floor vs nginx h2"],
  ['switchyard-h2', 'node-h2-pipe', "Switchyard h2 vs Node's http2 floor"],
  // The same floor over Node's core HTTP/2 API, without the compat request and response objects.
  ['node-h2-stream-pipe', 'nginx-h2', "Node's http2 core-API floor vs nginx h2"],
  ['node-h2-stream-pipe', 'node-h2-pipe', "Node's http2 core-API floor vs its compat-layer floor"],
  ['switchyard-h2', 'node-h2-stream-pipe', "Switchyard h2 vs Node's http2 core-API floor"],
  // The edge cache's targets (issue 14): a hit ≤ 1.3× the bare memory hit and ≤ 0.35× a forwarded
  // request; a miss ≤ 1.15× a forwarded request with the cache off; and nginx's cached hit for scale.
  ['switchyard-cache', 'memory-hit', 'cache hit vs the bare node:http memory hit (target ≤ 1.30×)'],
  ['switchyard-cache', 'switchyard', 'cache hit vs a forwarded request (target ≤ 0.35×)'],
  ['switchyard-cache-miss', 'switchyard', 'cache miss vs a forwarded request with the cache off (target ≤ 1.15×)'],
  ['switchyard-cache', 'nginx-cache', "cache hit vs nginx proxy_cache's hit"],
  ['memory-hit', 'nginx-cache', "the bare node:http memory hit vs nginx proxy_cache's hit"],
  ...opts.also.map(({ label }) => {
    const base = label.endsWith('-h2') ? 'switchyard-h2' : label.endsWith('-https') ? 'switchyard-https' : 'switchyard'
    return [label, base, `Switchyard (${label}) vs this build`]
  }),
].flatMap(([a, b, what]) => {
  const v = versus(a, b)
  return v === undefined ? [] : [`- ${what}: ${v}`]
})
if (comparisons.length > 0) {
  print('CPU per request, one proxy over another, median of the per-round ratios (range):')
  for (const line of comparisons) print(line)
}
// Issue 15's target: TLS must not widen the gap to nginx (the HTTPS ratio at most the plain one ×
// 1.1), unless Node's own floor is already past that; then within 1.15× of the floor.
const medianRatio = (a, b) => (rawOf(a) && rawOf(b) ? pairedCpuRatio(rawOf(a), rawOf(b)).median : NaN)
for (const [proto, ours, theirs, floor] of [
  ['HTTPS', 'switchyard-https', 'nginx-https', 'node-https-pipe'],
  ['h2', 'switchyard-h2', 'nginx-h2', 'node-h2-pipe'],
]) {
  const plain = medianRatio('switchyard', 'nginx')
  const target = plain * 1.1
  const ratio = medianRatio(ours, theirs)
  const floorRatio = medianRatio(floor, theirs)
  if (!Number.isFinite(ratio) || !Number.isFinite(target)) continue
  if (ratio <= target)
    print(`Target (${proto}): ${ratio.toFixed(2)}× nginx ≤ ${target.toFixed(2)}× (the plain ${plain.toFixed(2)}× × 1.1): met.`)
  else if (Number.isFinite(floorRatio) && floorRatio > target) {
    const vsFloor = medianRatio(ours, floor)
    print(
      `Target (${proto}): ${ratio.toFixed(2)}× nginx > ${target.toFixed(2)}×, but Node's bare floor is ${floorRatio.toFixed(2)}×; against the floor ${vsFloor.toFixed(2)}× (≤ 1.15×: ${vsFloor <= 1.15 ? 'met' : 'NOT met'}).`,
    )
  } else
    print(
      `Target (${proto}): ${ratio.toFixed(2)}× nginx > ${target.toFixed(2)}× (the plain ${plain.toFixed(2)}× × 1.1): NOT met; Node's floor ${Number.isFinite(floorRatio) ? `${floorRatio.toFixed(2)}×` : 'not measured'}.`,
    )
}
const measuredHandshakes = handshakes.filter(h => h.error === undefined)
if (measuredHandshakes.length > 0) {
  const nginxRate = measuredHandshakes.find(h => h.id === 'nginx-https')?.perCore
  print(
    `New TLS connections per second per core (a full TLS 1.3 handshake with ECDSA P-256 and one request each; wrk -H 'Connection: close'): ` +
      measuredHandshakes
        .map(
          h =>
            `${h.label} ${h.perCore.toFixed(0)}${nginxRate && h.id !== 'nginx-https' ? ` (${(h.perCore / nginxRate).toFixed(2)}× nginx)` : ''}${h.errors > 0 ? ` ⚠ ${h.errors} errors` : ''}`,
        )
        .join(', ') +
      '.',
  )
}
for (const h of handshakes.filter(h => h.error !== undefined)) print(`⚠ handshakes of ${h.label}: ${h.error}`)
print('')
print('Per-round range (min–max over the rounds) of each proxy:')
for (const p of all.filter(p => p.rounds.length > 0)) {
  const range = (pick, digits) => {
    const values = p.rounds.map(pick).filter(Number.isFinite)
    return `${Math.min(...values).toFixed(digits)}–${Math.max(...values).toFixed(digits)}`
  }
  print(
    `- ${p.label}: CPU µs/req ${range(r => r.main.cpuUsPerRequest, 1)}, req/s ${range(r => r.main.rps, 0)}, c=1 p50 ms ${range(r => r.c1?.p50ms, 3)}`,
  )
}
// Target: on a cacheable page, Switchyard --cache serves more requests per second than nginx
// without proxy_cache (the tutorial's nginx), in the same run, round by round.
const [cached, plainNginx] = [rawOf('switchyard-cache'), rawOf('nginx')]
if (cached !== undefined && plainNginx !== undefined) {
  const wins = cached.rounds.filter(r => (plainNginx.rounds.find(x => x.round === r.round)?.main.rps ?? Infinity) < r.main.rps).length
  print(
    `Switchyard --cache (hit) vs nginx without proxy_cache: ${byId('switchyard-cache').rps.toFixed(0)} vs ${byId('nginx').rps.toFixed(0)} req/s (medians); more req/s in ${wins} of ${cached.rounds.length} rounds`,
  )
}
const multi = byId('switchyard-workers')
if (quiet && multi)
  print(
    `--workers 2: ${(multi.rps / quiet.rps).toFixed(2)}× the req/s of one process, ${(multi.cpuUsPerRequest / quiet.cpuUsPerRequest).toFixed(2)}× its CPU per request.`,
  )
for (const s of summaries) {
  if (s.non2xx + s.socketErrors > 0)
    print(
      `⚠ ${s.label}: ${s.non2xx} non-2xx/3xx answers and ${s.socketErrors} socket errors counted by wrk (CPU/req counts only the good answers).`,
    )
  if (s.failed) print(`⚠ ${s.label}: ${s.failed}`)
}
const mb = kb => `${(kb / 1024).toFixed(1)} MB`
if (memory?.error) print(`Memory: the phase failed: ${memory.error}`)
else if (memory) {
  print(
    `Memory (Switchyard, one process, RSS): ${mb(memory.baselineKb)} before; ${mb(memory.peakKb)} with ${memory.opened} of ${memory.requested} idle keep-alive clients open ` +
      `(${((memory.peakKb - memory.baselineKb) / Math.max(1, memory.opened)).toFixed(1)} kB each${memory.failed ? `; ${memory.failed} failed, first: ${memory.firstError}` : ''}); ` +
      `${mb(memory.afterKb)} after they closed. Clients: ${memory.mode}.`,
  )
}

mkdirSync(opts.out, { recursive: true })
const stamp = date
  .toISOString()
  .replace(/\.\d+Z$/, 'Z')
  .replace(/:/g, '-')
const files = { json: join(opts.out, `${stamp}.json`), svg: join(opts.out, `${stamp}.svg`) }
const runtimeSeconds = Math.round((Date.now() - startedAt) / 100) / 10
const raw = all.map(({ id, label, port, failed, rounds }) => ({ id, label, port: port ?? null, failed: failed ?? null, rounds }))
writeFileSync(
  files.json,
  `${JSON.stringify({ date: machine.date, runtimeSeconds, options: opts, baseline: baseline.id, machine, summary: summaries, memory, handshakes, proxies: raw }, null, 2)}\n`,
)
const subtitle = `${machine.cpuModel} × ${machine.cores}, Node ${machine.node}, ${opts.rounds}×${opts.seconds}s at c=${opts.connections}${pinned ? `, proxy on CPU ${proxyCpus}` : ''}, ${machine.date}`
writeFileSync(files.svg, svg(summaries, { baselineLabel: baseline.label, subtitle, rounds: opts.rounds }))
print('')
print(`Machine: ${subtitle}; load average after the rounds ${loadAfterRounds.map(l => l.toFixed(2)).join(' ')}`)
print(`Wrote ${files.json} and ${files.svg} (${runtimeSeconds}s in all)`)
process.stdout.write(`${out.join('\n')}\n`)
process.exit(0)
