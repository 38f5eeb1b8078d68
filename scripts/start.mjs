// `npm start`: build, then run two backends and the balancer as one process tree,
// the whole stack of the scalable-app tutorial in one terminal.
//
//   npm start                                  backend-5000, backend-5001 on 127.0.0.1, balancer on 8080
//   npm run start:backend -- --port 5002       one backend; everything after `--only backend` goes to it
//   npm run start:balancer -- --upstream ...   the balancer alone, likewise
//
// Environment, for tests and for running next to something that holds the default ports
// (read only by the full stack; with --only, pass --port instead):
//   SWITCHYARD_BACKEND_PORTS=5000,5001   backend ports; backend ids and the balancer's upstreams follow them
//   SWITCHYARD_PORT=8080                 balancer port
//   SWITCHYARD_ADMIN_PORT=9090           the balancer's admin listener: dashboard, /status.json, /metrics
//   SWITCHYARD_SKIP_BUILD=1              skip `tsc -b` (the tests build first)
//
// Stopping. The children stay in our process group, so a terminal's Ctrl-C reaches them directly as
// well as through us. A process manager signals `npm start` alone, and npm forwards the signal to
// the `sh -c` running the script only; dash waits for a lone command instead of becoming it, so the
// package.json scripts say `exec node scripts/start.mjs` to make that shell become us. Either way we
// forward SIGTERM once and wait. The children get an IPC channel only to notice that we died, even
// by SIGKILL, and stop too: nothing is left holding a port.
//
// Exit status: 0 when every child exited 0 after a stop; 1 when the build failed, a child died on
// its own or did not stop cleanly, or a second signal cut the wait short.

import { spawn, spawnSync } from 'node:child_process'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const cli = {
  backend: join(root, 'packages/backend/dist/cli.js'),
  balancer: join(root, 'packages/balancer/dist/cli.js'),
}
/** A signal this soon after the first is the same Ctrl-C, delivered by the terminal and again by npm. */
const SAME_SIGNAL_MS = 1000

const backendPorts = (process.env.SWITCHYARD_BACKEND_PORTS ?? '5000,5001').split(',')
const balancerPort = process.env.SWITCHYARD_PORT ?? '8080'
const adminPort = process.env.SWITCHYARD_ADMIN_PORT ?? '9090'

const log = line => void process.stdout.write(`[launcher] ${line}\n`)
const how = (code, signal) => (signal === null ? `code ${code}` : `signal ${signal}`)

/** name -> argv after the cli path, for each process to start. */
function plan(argv) {
  if (argv.length === 0) {
    const backends = backendPorts.map(port => [`backend-${port}`, [cli.backend, '--port', port, '--host', '127.0.0.1', '--id', `backend-${port}`]])
    const upstreams = backendPorts.flatMap(port => ['--upstream', `127.0.0.1:${port}`])
    // Active health checks on, as a production setup would have them; the backends serve /healthz.
    // The dashboard on 127.0.0.1:9090, off the public port.
    const balancer = [cli.balancer, '--port', balancerPort, '--health-path', '/healthz', '--admin-port', adminPort, ...upstreams]
    return [...backends, ['balancer', balancer]]
  }
  const [flag, name, ...rest] = argv
  if (flag !== '--only' || !Object.hasOwn(cli, name)) {
    log('usage: node scripts/start.mjs [--only backend|balancer [flags for it...]]')
    process.exit(1)
  }
  return [[name, [cli[name], ...rest]]]
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
  if (build.status !== 0) {
    log(`build failed: tsc exited with ${how(build.status, build.signal)}`)
    process.exit(1)
  }
}

/** The children still running, by name. */
const running = new Map()
/** When the first stop signal arrived, or 0. */
let stopping = 0
let failed = false

function stop(why) {
  const names = [...running.keys()].join(', ')
  if (stopping !== 0) {
    if (Date.now() - stopping < SAME_SIGNAL_MS) return
    // Asked twice: someone is waiting on a child that does not finish, so do not wait for it.
    log(`${why} again, killing ${names}`)
    for (const child of running.values()) child.kill('SIGKILL')
    process.exit(1)
  }
  stopping = Date.now()
  log(`${why}, stopping ${names}`)
  for (const child of running.values()) child.kill('SIGTERM')
}

function onClose(name, code, signal) {
  running.delete(name)
  if (stopping === 0 || code !== 0) {
    failed = true
    log(`${name} exited with ${how(code, signal)}`)
  }
  if (running.size === 0) process.exit(failed ? 1 : 0)
  // A child died on its own. nginx's master would restart a worker, but a backend on a fixed port
  // that dies at once most likely lost a port conflict and would die again: stop, and say which.
  if (stopping === 0) stop(`${name} is down`)
}

for (const [name, args] of processes) {
  // No shell and no npx: each pid we signal is the node process that serves.
  const child = spawn(process.execPath, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  running.set(name, child)
  // readline buffers a partial line until its newline, and flushes the rest when the stream ends,
  // which is before 'close': a child's last words are printed before we exit.
  createInterface({ input: child.stdout }).on('line', line => void process.stdout.write(`[${name}] ${line}\n`))
  createInterface({ input: child.stderr }).on('line', line => void process.stderr.write(`[${name}] ${line}\n`))
  child.on('close', (code, signal) => onClose(name, code, signal))
}

process.on('SIGINT', () => stop('SIGINT'))
process.on('SIGTERM', () => stop('SIGTERM'))
