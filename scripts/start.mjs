// `npm start`: build, then run the backends and the balancer as one process tree, the whole
// stack of the scalable-app tutorial in one terminal, kept up when a backend dies.
//
//   npm start                                  backend-5000, backend-5001 on 127.0.0.1, balancer on 8080
//   npm start -- --backends 4                  backend-5000 .. backend-5003, and the balancer's upstreams follow
//   npm start -- --port 80 --policy ip-hash    any other flag goes to the balancer
//   npm start -- --redis                       a private redis-server on 127.0.0.1:6379, the backends'
//                                              cache, sessions and jobs on it, and one switchyard-worker
//   npm start -- --redis redis://host:6379     the same on a Redis that is already running
//   npm run start:backend -- --port 5002       one backend; everything after `--only backend` goes to it
//   npm run start:balancer -- --upstream ...   the balancer alone, likewise
//   npm start -- --https                       HTTPS (h2 and HTTP/1.1) on 8443 too, with a self-signed
//                                              certificate for localhost made once in .switchyard/tls/
//
// Environment, for tests and for running next to something that holds the default ports
// (read only by the full stack; with --only, pass --port instead):
//   SWITCHYARD_BACKEND_PORTS=5000,5001   backend ports; backend ids and the balancer's upstreams follow them.
//                                        With --backends N, N ports from the first of them.
//   SWITCHYARD_PORT=8080                 balancer port
//   SWITCHYARD_ADMIN_PORT=9090           the balancer's admin listener: dashboard, /status.json, /metrics
//   SWITCHYARD_REDIS_PORT=6379           the port of the private redis-server (`--redis` without a URL)
//   SWITCHYARD_SKIP_BUILD=1              skip `tsc -b` (the tests build first)
//   SWITCHYARD_HTTPS_PORT=8443           the balancer's HTTPS port, with --https
//   SWITCHYARD_TLS_DIR=.switchyard/tls   where --https keeps its certificate (git-ignored)
//
// Redis. The URL reaches the backends and the worker as REDIS_URL in their environment, never on
// a command line, where `ps` would show its password to every user; it is printed with the
// password masked. Nothing waits for Redis: a backend without it serves, degraded (no shared
// cache, 503 for /session and /jobs), and recovers by itself once it answers. The private
// redis-server and the worker are supervised as backends are (restarted with a backoff), and the
// redis-server is stopped last, so that no child logs an outage on the way down.
//
// Supervision, as a process manager would do it (systemd `Restart=always` with a start limit,
// runit, nginx's master for its workers):
// - A backend that exits on its own, by any code or signal, is started again on its port and
//   id after a backoff: 100 ms, doubled per death up to 5 s; back to 100 ms once a run stayed up
//   (listening) for 10 s. One line per restart says who died, how, and when it comes back.
// - A backend that died 5 times within 30 s without ever listening (a taken port, a bad flag)
//   would only die again: it is given up on, once, with its last stderr line; the rest of the
//   stack keeps serving. With no backend left, everything stops, exit 1.
// - The balancer exiting on its own stops everything, exit 1: without it nothing is served.
// "Listening" is the child's own `... listening on http://...` line on stdout, which every CLI
// of this repo prints once its port is bound: no polling, and no IPC message to add to them.
//
// Why hand-written. `concurrently` (the usual choice) was weighed first: it runs every command
// through `/bin/sh -c`, so the pid we signal would be a shell, not the node that serves (the
// signal rules below need node itself); it restarts only on a non-zero exit, so a backend
// killed with SIGTERM by someone else, or one that exits 0, stays down; its backoff is a fixed
// delay or 2^N s (1 s first, no cap, never reset) and its restart tries are a lifetime count,
// with no "never listened" rule; and it restarts all commands alike, where the balancer's death
// must stop the stack. pm2 and forever are daemons with their own state files, not one
// foreground process tree. Each rule here is a few lines; a library would still need them.
//
// Stopping. The children stay in our process group, so a terminal's Ctrl-C reaches them directly as
// well as through us. A process manager signals `npm start` alone, and npm forwards the signal to
// the `sh -c` running the script only; dash waits for a lone command instead of becoming it, so the
// package.json scripts say `exec node scripts/start.mjs` to make that shell become us. Either way we
// forward SIGTERM once and wait; a restart still pending is cancelled. The children get an IPC
// channel only to notice that we died, even by SIGKILL, and stop too: nothing is left holding a port.
//
// Exit status: 0 when every child exited 0 after a stop; 1 when the build failed, the balancer
// died on its own, no backend was left, a child did not stop cleanly, or a second signal cut
// the wait short.

import { spawn, spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cli = {
  backend: join(root, 'packages/backend/dist/cli.js'),
  balancer: join(root, 'packages/balancer/dist/cli.js'),
}
const WORKER_CLI = join(root, 'packages/backend/dist/worker-cli.js')
/** A signal this soon after the first is the same Ctrl-C, delivered by the terminal and again by npm. */
const SAME_SIGNAL_MS = 1000
/** The first restart's delay; doubled per death, up to MAX_BACKOFF_MS. */
const FIRST_BACKOFF_MS = 100
const MAX_BACKOFF_MS = 5000
/** A run that listened this long was healthy: the next death starts the backoff afresh. */
const STABLE_MS = 10_000
/** Deaths without listening, within GIVE_UP_WINDOW_MS, after which a backend is given up on. */
const GIVE_UP_DEATHS = 5
const GIVE_UP_WINDOW_MS = 30_000
/** What the backend and balancer CLIs print once their port is bound. */
const LISTENING = /^\S+ listening on https?:\/\//
/** What a switchyard-worker prints once it takes jobs, and a redis-server once it takes connections. */
const WORKER_READY = /^\S+ ready: jobs from /
const REDIS_READY = /Ready to accept connections/

const portsFromEnv = process.env.SWITCHYARD_BACKEND_PORTS
const configuredPorts = (portsFromEnv ?? '5000,5001').split(',')
const balancerPort = process.env.SWITCHYARD_PORT ?? '8080'
const adminPort = process.env.SWITCHYARD_ADMIN_PORT ?? '9090'
const redisPort = process.env.SWITCHYARD_REDIS_PORT ?? '6379'
const httpsPort = process.env.SWITCHYARD_HTTPS_PORT ?? '8443'
const tlsDir = process.env.SWITCHYARD_TLS_DIR ?? join(root, '.switchyard', 'tls')
/** Whether `--https` was given: the balancer then serves HTTPS too, with a local certificate. */
let https = false

const log = line => void process.stdout.write(`[launcher] ${line}\n`)
const how = (code, signal) => (signal === null ? `code ${code}` : `signal ${signal}`)

/** Exits 1 with one line, before anything started. */
function refuse(line) {
  log(line)
  process.exit(1)
}

/** One process to run, and what supervising it takes. */
function supervised(name, args, restart, { ready = LISTENING, env = {}, backend = restart } = {}) {
  return {
    name,
    args,
    /** Added to the environment the child inherits. */
    env,
    /** The line that says this run started: listening, or ready. */
    ready,
    /** A backend, the worker and redis-server are started again when they exit on its own; the balancer is not. */
    restart,
    /** Whether it counts as a backend: with none left, the stack stops. */
    backend,
    /** The running process, or undefined. */
    child: undefined,
    /** The pending restart, or undefined. */
    timer: undefined,
    /** When this run printed its listening line (Date.now()), or undefined. */
    listenedAt: undefined,
    /** When the runs that died without listening died, within the give-up window. */
    failedStarts: [],
    /** Deaths since the last run that stayed up STABLE_MS: the backoff's exponent. */
    deaths: 0,
    restarts: 0,
    lastError: '(nothing on stderr)',
  }
}

/** Whether the flag `name` is among `args`, as `--name value` or `--name=value`. */
const given = (args, name) => args.some(arg => arg === name || arg.startsWith(`${name}=`))

/**
 * The processes to run: `{ name, args, restart }` each. The full stack takes `--backends N`
 * and passes every other flag to the balancer, where it overrides the launcher's own choice.
 */
function plan(argv) {
  if (argv[0] === '--only') {
    const name = argv[1]
    if (!Object.hasOwn(cli, name))
      refuse('usage: node scripts/start.mjs [--backends N] [balancer flags...] | --only backend|balancer [flags for it...]')
    return [supervised(name, [cli[name], ...argv.slice(2)], false)]
  }
  let count
  /** `--redis`: undefined when off, '' for a private redis-server, else the URL. */
  let redis
  const rest = []
  for (let i = 0; i < argv.length; i++) {
    const [flag, inline] = argv[i].split(/=(.*)/s)
    if (flag === '--redis') {
      redis = inline ?? (argv[i + 1] !== undefined && !argv[i + 1].startsWith('--') ? argv[++i] : '')
      continue
    }
    if (flag === '--https') {
      https = true
      continue
    }
    if (flag !== '--backends') {
      rest.push(argv[i])
      continue
    }
    const value = inline ?? argv[++i]
    if (!/^\d+$/.test(value ?? '') || Number(value) < 1 || Number(value) > 64) {
      refuse(`--backends: ${JSON.stringify(value ?? '')} is not a whole number from 1 to 64`)
    }
    count = Number(value)
  }
  // --backends N: N ports from the first configured one, whatever the list's length.
  if (count !== undefined && portsFromEnv !== undefined) {
    log(`--backends ${count} overrides SWITCHYARD_BACKEND_PORTS=${portsFromEnv}: ${count} backend(s) from port ${configuredPorts[0]}`)
  }
  const ports = count === undefined ? configuredPorts : Array.from({ length: count }, (_, i) => String(Number(configuredPorts[0]) + i))
  const shared = redis === undefined ? [] : redisProcesses(redis)
  const env = shared.length === 0 ? {} : shared[0].env
  const backends = ports.map(port =>
    supervised(`backend-${port}`, [cli.backend, '--port', port, '--host', '127.0.0.1', '--id', `backend-${port}`], true, { env }),
  )
  // Active health checks on, as a production setup would have them (the backends serve
  // /healthz): they also bring a restarted backend back. The dashboard on 127.0.0.1:9090.
  const defaults = [
    ['--port', balancerPort],
    ['--health-path', '/healthz'],
    ['--admin-port', adminPort],
  ].filter(([flag]) => !given(rest, flag))
  const upstreams = ports.flatMap(port => ['--upstream', `127.0.0.1:${port}`])
  return [...shared.slice(1), ...backends, supervised('balancer', [cli.balancer, ...defaults.flat(), ...upstreams, ...rest], false)]
}

/** A Redis URL with its password masked, for a log line. */
function masked(url) {
  return url.password === '' ? url.href : url.href.replace(`:${url.password}@`, ':***@')
}

/** The private redis-server's folder, removed on exit. */
let redisDir

/**
 * What `--redis` adds: `[{ env }, redis-server?, worker]`. The first holds the REDIS_URL for
 * the backends. Without a URL, a private redis-server as a test would start it: no snapshots,
 * no append-only file, in a folder of its own (BullMQ needs `maxmemory-policy noeviction`,
 * redis-server's default).
 */
function redisProcesses(given) {
  let url
  const extra = []
  if (given === '') {
    if (spawnSync('redis-server', ['--version']).status !== 0) {
      refuse('--redis: redis-server is not installed: apt-get install redis-server, or pass a URL: npm start -- --redis redis://host:6379')
    }
    redisDir = mkdtempSync(join(tmpdir(), 'switchyard-redis-'))
    const args = ['--port', redisPort, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', redisDir]
    extra.push(supervised('redis', [join(root, 'scripts/redis-child.mjs'), ...args], true, { ready: REDIS_READY, backend: false }))
    url = new URL(`redis://127.0.0.1:${redisPort}`)
    log(`--redis: a private redis-server on 127.0.0.1:${redisPort}, in ${redisDir}`)
  } else {
    try {
      url = new URL(given)
    } catch {
      url = undefined
    }
    if (url === undefined || (url.protocol !== 'redis:' && url.protocol !== 'rediss:')) {
      refuse(`--redis: ${JSON.stringify(given.replace(/:[^:@/]*@/, ':***@'))} is not a redis:// or rediss:// URL`)
    }
    log(`--redis: using ${masked(url)}`)
  }
  const env = { REDIS_URL: url.href }
  const worker = supervised('worker-1', [WORKER_CLI, '--id', 'worker-1'], true, { ready: WORKER_READY, env, backend: false })
  return [{ env }, ...extra, worker]
}

const processes = plan(process.argv.slice(2))

if (process.env.SWITCHYARD_SKIP_BUILD !== '1') {
  // Only the packages: a type error in a test must not stop `npm start`, and the root project
  // (noEmit, so never up to date) would be type-checked again on every start.
  // Synchronous, before our signal handlers exist: a stop during the build just ends us, and tsc
  // finishes on its own; it holds no port.
  log('building: tsc -b packages/backend packages/balancer')
  const tsc = join(root, 'node_modules/typescript/bin/tsc')
  const build = spawnSync(process.execPath, [tsc, '-b', 'packages/backend', 'packages/balancer'], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) refuse(`build failed: tsc exited with ${how(build.status, build.signal)}`)
}

// --https: the certificate is made after the build, with the balancer's own code for it.
if (https) {
  const { localCertificate, trustAdvice } = await import(join(root, 'packages/balancer/dist/server/self-signed.js'))
  let local
  try {
    local = localCertificate(tlsDir)
  } catch (err) {
    refuse(err.message)
  }
  processes.find(p => p.name === 'balancer').args.push('--https-port', httpsPort, '--tls-cert', local.cert, '--tls-key', local.key)
  for (const line of trustAdvice(local, `https://localhost:${httpsPort}/`)) log(line)
}

/** When the first stop signal arrived, or 0. */
let stopping = 0
let failed = false

function running() {
  return processes.filter(p => p.child !== undefined)
}

/**
 * Signals what still runs: everything but the private redis-server, which is stopped only once
 * the rest are gone (they would log an outage on the way down).
 */
function terminate() {
  const rest = running().filter(p => p.name !== 'redis')
  for (const p of rest.length === 0 ? running() : rest) p.child.kill('SIGTERM')
}

/** Stops every child (SIGTERM) and cancels pending restarts; exits once they are gone. */
function stop(why) {
  const names = running()
    .map(p => p.name)
    .join(', ')
  if (stopping !== 0) {
    if (Date.now() - stopping < SAME_SIGNAL_MS) return
    // Asked twice: someone is waiting on a child that does not finish, so do not wait for it.
    log(`${why} again, killing ${names}`)
    for (const p of running()) p.child.kill('SIGKILL')
    process.exit(1)
  }
  stopping = Date.now()
  const pending = processes.filter(p => p.timer !== undefined)
  for (const p of pending) clearTimeout(p.timer)
  const cancelled = pending.length === 0 ? '' : `; cancelled the restart of ${pending.map(p => p.name).join(', ')}`
  log(`${why}, stopping ${names}${cancelled}`)
  terminate()
  exitIfDone()
}

function exitIfDone() {
  if (running().length === 0) process.exit(failed ? 1 : 0)
  // Only the private redis-server is left: its turn.
  if (stopping !== 0 && running().every(p => p.name === 'redis')) terminate()
}

process.on('exit', () => {
  if (redisDir !== undefined) rmSync(redisDir, { recursive: true, force: true })
})

/** Starts (or starts again) one process, its output prefixed with its name. */
function start(p) {
  p.timer = undefined
  p.listenedAt = undefined
  // No shell and no npx: each pid we signal is the node process that serves (redis-server's
  // is a small node wrapper, scripts/redis-child.mjs, with the same IPC channel as the others).
  const child = spawn(process.execPath, p.args, { cwd: root, env: { ...process.env, ...p.env }, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  p.child = child
  // readline buffers a partial line until its newline, and flushes the rest when the stream ends,
  // which is before 'close': a child's last words are printed before we exit.
  createInterface({ input: child.stdout }).on('line', line => {
    // The line every CLI here prints once its port is bound: this run started.
    if (p.listenedAt === undefined && p.ready.test(line)) {
      p.listenedAt = Date.now()
      p.failedStarts = []
    }
    process.stdout.write(`[${p.name}] ${line}\n`)
  })
  createInterface({ input: child.stderr }).on('line', line => {
    p.lastError = line
    process.stderr.write(`[${p.name}] ${line}\n`)
  })
  child.on('close', (code, signal) => onClose(p, code, signal))
}

function onClose(p, code, signal) {
  p.child = undefined
  const died = `${p.name} exited with ${how(code, signal)}`
  if (stopping !== 0) {
    // A child still loading when our SIGTERM came has no handler yet and dies of it: that is the
    // stop we asked for, not a failure (systemd counts a SIGTERM death as a clean stop too).
    if (signal === 'SIGTERM') log(`${p.name} stopped while it was still starting`)
    else if (code !== 0) {
      failed = true
      log(died)
    }
    exitIfDone()
  } else if (!p.restart) {
    failed = true
    // --only: that was the one process. Otherwise the balancer: the stack serves nothing now.
    if (running().length === 0) {
      log(died)
      exitIfDone()
    } else {
      stop(`${died}; nothing is served without it`)
    }
  } else {
    restartLater(p, died)
  }
}

/** Schedules a backend's restart after its backoff, or gives up on one that never starts. */
function restartLater(p, died) {
  const now = Date.now()
  if (p.listenedAt === undefined) {
    p.failedStarts = [...p.failedStarts, now].filter(at => now - at < GIVE_UP_WINDOW_MS)
    if (p.failedStarts.length >= GIVE_UP_DEATHS) {
      log(
        `${died}; it died ${GIVE_UP_DEATHS} times in ${GIVE_UP_WINDOW_MS / 1000} s without listening, giving up on it (last error: ${p.lastError})`,
      )
      if (!p.backend || processes.some(other => other.backend && (other.child !== undefined || other.timer !== undefined))) return
      failed = true
      stop('no backend left')
      return
    }
  } else if (now - p.listenedAt >= STABLE_MS) {
    p.deaths = 0
  }
  const delay = Math.min(FIRST_BACKOFF_MS * 2 ** p.deaths, MAX_BACKOFF_MS)
  p.deaths++
  p.restarts++
  log(`${died}; restarting in ${delay} ms (restart ${p.restarts})`)
  p.timer = setTimeout(() => start(p), delay)
}

for (const p of processes) start(p)

process.on('SIGINT', () => stop('SIGINT'))
process.on('SIGTERM', () => stop('SIGTERM'))
