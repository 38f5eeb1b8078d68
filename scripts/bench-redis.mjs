// `npm run bench:redis`: what sharing the state in Redis costs, measured in one run on this machine.
//
//   npm run bench:redis                                   3 rounds of 5 s at 50 connections, 2000 jobs
//   npm run bench:redis -- --rounds 2 --duration 3 --jobs 1000 --concurrency 2
//
// 1. Cache HITs: GET / on three backends, each answering from its cache after one MISS:
//    - memory: the embedded default (lru-cache in the process);
//    - redis: --redis, every HIT read from Redis (cacheLocalTtl 0: no in-process copy);
//    - redis+local: --redis with the default 1 s in-process copies in front.
//    wrk runs against each in turn, the order rotating per round, at 50 connections for
//    throughput and then 1 connection for latency. The ratios to memory, per round, answer
//    "how much does a Redis round trip cost per request".
// 2. Job throughput: --jobs report jobs of ms=0, posted to a backend over HTTP (20 at a time),
//    run by 1 and then 2 switchyard-worker processes (--jobs-concurrency --concurrency each);
//    jobs/s from the first POST until BullMQ counts every job completed.
//
// A private redis-server (--save '' --appendonly no, a free port, a temp dir) holds everything;
// it and every child are stopped by pid at exit. Progress on stderr, the report on stdout.

import { spawn, spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { cpus, loadavg, release, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { runWrk } from './bench/wrk.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const WORKER = join(root, 'packages/backend/dist/worker-cli.js')
const BACKEND = join(root, 'scripts/bench/redis-backend.mjs')
const USAGE = 'usage: npm run bench:redis -- [--rounds 3] [--duration 5] [--connections 50] [--jobs 2000] [--concurrency 2]'
const START_TIMEOUT_MS = 20_000
const JOBS_TIMEOUT_MS = 300_000

const progress = line => void process.stderr.write(`bench:redis: ${line}\n`)
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
        jobs: { type: 'string', default: '2000' },
        concurrency: { type: 'string', default: '2' },
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
  const whole = (name, min, max) => {
    const n = /^\d+$/.test(values[name]) ? Number(values[name]) : NaN
    if (!(n >= min && n <= max)) die(`--${name}: ${JSON.stringify(values[name])} is not a whole number from ${min} to ${max} (${USAGE})`)
    return n
  }
  return {
    rounds: whole('rounds', 1, 20),
    duration: whole('duration', 1, 60),
    connections: whole('connections', 1, 1000),
    jobs: whole('jobs', 1, 100_000),
    concurrency: whole('concurrency', 1, 100),
  }
}

const children = new Set()
const dirs = []
function cleanUp() {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
}
process.on('exit', cleanUp)
process.on('SIGINT', () => process.exit(130))
process.on('SIGTERM', () => process.exit(143))

/** Spawns a child and resolves with it and the first stdout match of `ready` (group 1). */
async function start(file, args, ready, what) {
  const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'inherit'] })
  children.add(child)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready within ${START_TIMEOUT_MS} ms`)), START_TIMEOUT_MS)
    child.once('exit', code => reject(new Error(`${what} exited with ${code} before it was ready`)))
    createInterface({ input: child.stdout }).on('line', line => {
      const m = ready.exec(line)
      if (m) {
        clearTimeout(timer)
        resolve({ child, match: m[1] })
      }
    })
  })
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  const gone = once(child, 'exit')
  child.kill('SIGTERM')
  await gone
  children.delete(child)
}

async function freePort() {
  const probe = createServer().listen(0, '127.0.0.1')
  await once(probe, 'listening')
  const { port } = probe.address()
  await new Promise(resolve => probe.close(resolve))
  return port
}

async function redisServer() {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-redis-'))
  dirs.push(dir)
  const port = await freePort()
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir]
  await start('redis-server', args, /(Ready to accept connections)/, 'redis-server')
  return `redis://127.0.0.1:${port}`
}

async function backend(opts) {
  const { match } = await start(process.execPath, [BACKEND, JSON.stringify(opts)], /^listening (\d+)$/, 'backend')
  return `http://127.0.0.1:${match}`
}

const median = xs => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]
const fmt = (n, digits = 0) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })

async function cacheHits(o, redis) {
  const targets = {
    memory: await backend({ quiet: true }),
    redis: await backend({ redis: redis, redisPrefix: 'bench-a:', cacheLocalTtl: 0 }),
    'redis+local': await backend({ redis: redis, redisPrefix: 'bench-b:' }),
  }
  const names = Object.keys(targets)
  for (const name of names) {
    const res = await fetch(`${targets[name]}/`)
    await res.text()
    const again = await fetch(`${targets[name]}/`)
    await again.text()
    if (again.headers.get('x-cache') !== 'HIT') die(`${name}: GET / is ${again.headers.get('x-cache')}, not HIT`)
    await runWrk(`${targets[name]}/`, { connections: o.connections, seconds: 1 })
  }
  const rounds = []
  for (let r = 0; r < o.rounds; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length])
    const round = {}
    for (const name of order) {
      progress(`round ${r + 1}/${o.rounds}: ${name}`)
      const main = await runWrk(`${targets[name]}/`, { connections: o.connections, seconds: o.duration })
      const c1 = await runWrk(`${targets[name]}/`, { connections: 1, seconds: 2 })
      if (main.errors > 0 || c1.errors > 0) die(`${name}: wrk counted errors (${main.errors + c1.errors})`)
      round[name] = { rps: main.rps, p50ms: c1.p50ms }
    }
    rounds.push(round)
  }
  return { names, rounds }
}

async function jobThroughput(o, redis) {
  const { createClient } = await import('redis')
  const client = createClient({ url: redis })
  await client.connect()
  const base = await backend({ redis: redis, redisPrefix: 'bench-jobs:', quiet: true })
  const results = []
  for (const workers of [1, 2]) {
    await client.del((await client.keys('bench-jobs:*')).concat('bench-jobs:none'))
    const procs = []
    for (let i = 0; i < workers; i++) {
      const args = [
        WORKER,
        '--redis',
        redis,
        '--redis-prefix',
        'bench-jobs:',
        '--jobs-concurrency',
        String(o.concurrency),
        '--quiet',
        '--id',
        `bench-worker-${i + 1}`,
      ]
      procs.push((await start(process.execPath, args, /^(\S+) ready: /, 'switchyard-worker')).child)
    }
    progress(`${o.jobs} jobs, ${workers} worker${workers > 1 ? 's' : ''}`)
    const started = performance.now()
    let next = 0
    const post = async () => {
      while (next < o.jobs) {
        next++
        const res = await fetch(`${base}/jobs`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: '{"type":"report","ms":0}',
        })
        await res.text()
        if (res.status !== 202) die(`POST /jobs answered ${res.status}`)
      }
    }
    await Promise.all(Array.from({ length: 20 }, post))
    const posted = performance.now()
    for (;;) {
      const done = await client.zCard('bench-jobs:bull:jobs:completed')
      if (done >= o.jobs) break
      if (performance.now() - started > JOBS_TIMEOUT_MS) die(`only ${done} of ${o.jobs} jobs completed in ${JOBS_TIMEOUT_MS / 1000} s`)
      await new Promise(resolve => setTimeout(resolve, 10))
    }
    const seconds = (performance.now() - started) / 1000
    results.push({ workers, seconds, jobsPerSecond: o.jobs / seconds, postSeconds: (posted - started) / 1000 })
    for (const p of procs) await stop(p)
  }
  await client.quit()
  return results
}

async function main() {
  const o = options()
  if (spawnSync('wrk', ['--version']).error) die('wrk is not installed: apt-get install wrk')
  if (spawnSync('redis-server', ['--version']).error) die('redis-server is not installed: apt-get install redis-server')
  progress('building')
  if (spawnSync('npx', ['tsc', '-b'], { cwd: root, stdio: 'inherit' }).status !== 0) die('the build failed')
  const redis = await redisServer()
  const cache = await cacheHits(o, redis)
  const jobs = await jobThroughput(o, redis)

  const cpu = cpus()[0]?.model ?? 'unknown CPU'
  const redisVersion = /v=(\S+)/.exec(spawnSync('redis-server', ['--version']).stdout.toString())?.[1]
  const out = []
  out.push(
    `bench:redis, ${new Date().toISOString()}, node ${process.version}, Redis ${redisVersion}, ${cpus().length} x ${cpu}, Linux ${release()}, load ${loadavg()
      .map(l => l.toFixed(2))
      .join(' ')}`,
  )
  out.push('')
  out.push(`Cache HITs, GET /: ${o.rounds} rounds, ${o.duration} s at ${o.connections} connections (req/s), then 2 s at 1 connection (p50)`)
  out.push('| cache | req/s (median) | × memory | p50 at c=1 | × memory |')
  out.push('|---|---|---|---|---|')
  const med = (name, key) => median(cache.rounds.map(r => r[name][key]))
  const ratio = (name, key) => median(cache.rounds.map(r => r[name][key] / r.memory[key]))
  for (const name of cache.names) {
    out.push(
      `| ${name} | ${fmt(med(name, 'rps'))} | ${fmt(ratio(name, 'rps'), 2)} | ${fmt(med(name, 'p50ms') * 1000)} µs | ${fmt(ratio(name, 'p50ms'), 2)} |`,
    )
  }
  out.push('')
  out.push(`Jobs: ${o.jobs} report jobs of ms=0, POST /jobs 20 at a time, --jobs-concurrency ${o.concurrency} per worker`)
  out.push('| workers | seconds | jobs/s end to end | posting took |')
  out.push('|---|---|---|---|')
  for (const r of jobs) out.push(`| ${r.workers} | ${fmt(r.seconds, 2)} | ${fmt(r.jobsPerSecond)} | ${fmt(r.postSeconds, 2)} s |`)
  process.stdout.write(`${out.join('\n')}\n`)
  process.exit(0)
}

main().catch(err => die(err.message))
