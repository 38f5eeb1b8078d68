// Every process the bench starts goes through here: each in a process group of its own, so that one
// kill ends a proxy and all it forked (nginx's worker, Switchyard's workers), and nothing else.
// Killing is synchronous, so it also works from an 'exit' handler; a watchdog process covers the
// case where the bench itself is killed outright.

import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { createServer } from 'node:net'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

/** Soft fd limit asked for every child: 10,000 idle clients need as many sockets, plus upstreams. */
export const FD_LIMIT = 65536
/** Output lines kept per child, for the one line that says why it failed. */
const TAIL_LINES = 8

const running = new Set()
let watchdog

function tellWatchdog(message) {
  if (watchdog?.connected) watchdog.send(message)
}

/** Starts the watchdog; `dir` (a switchyard-bench-* temp dir) is removed by it if we are killed. */
export function startWatchdog(dir) {
  watchdog = spawn(process.execPath, [fileURLToPath(new URL('./watchdog.mjs', import.meta.url))], {
    detached: true,
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  // Its channel must not keep the bench alive; it is closed (and the watchdog exits) when we exit.
  watchdog.unref()
  watchdog.channel?.unref()
  tellWatchdog({ dir })
}

function killGroup(pid, signal = 'SIGKILL') {
  try {
    process.kill(-pid, signal)
  } catch {
    // Already gone.
  }
}

/**
 * Starts `command args` in a new process group. With `fdLimit`, through `sh -c 'ulimit -n ...; exec'`
 * so the pid is still the command's own. Resolves nothing: returns the ChildProcess with `tail`
 * (its last output lines), `lines` (a hook called per line) and `exited` (a promise).
 */
export function launch(name, command, args, { fdLimit = true, stdin = 'ignore', ipc = false, cwd, cpus } = {}) {
  // `cpus` (a taskset list such as "1"): the process and all it forks run only there.
  const pin = cpus === undefined ? '' : `taskset -c ${cpus} `
  const raise = `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec ${pin}"$0" "$@"`
  const [file, argv] = fdLimit
    ? ['/bin/sh', ['-c', raise, command, ...args]]
    : cpus === undefined
      ? [command, args]
      : ['taskset', ['-c', cpus, command, ...args]]
  const child = spawn(file, argv, { cwd, detached: true, stdio: [stdin, 'pipe', 'pipe', ...(ipc ? ['ipc'] : [])] })
  child.benchName = name
  child.tail = []
  child.onLine = () => {}
  running.add(child)
  tellWatchdog({ add: child.pid })
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', line => {
      child.tail.push(line)
      if (child.tail.length > TAIL_LINES) child.tail.shift()
      child.onLine(line)
    })
  }
  child.exited = new Promise(resolve => {
    child.once('error', err => resolve({ how: err.code === 'ENOENT' ? `${command} not found` : err.message }))
    child.once('exit', (code, signal) => resolve({ how: signal === null ? `exited with code ${code}` : `killed by ${signal}` }))
  }).then(result => {
    // A group whose leader is gone may still hold a forked process (an orphaned nginx worker).
    killGroup(child.pid)
    running.delete(child)
    tellWatchdog({ remove: child.pid })
    return result
  })
  return child
}

/** Kills a child's whole group and waits (bounded) for it to be reaped. */
export async function stop(child, waitMs = 3000) {
  killGroup(child.pid)
  await Promise.race([child.exited, sleep(waitMs)])
}

/** Synchronous: for 'exit' handlers. */
export function killAll() {
  for (const child of running) killGroup(child.pid)
}

/** Why a child failed, in one line: how it exited and what it said last. */
export function why(child, how) {
  const said = child.tail
    .filter(l => l.trim() !== '')
    .slice(-2)
    .join(' | ')
  return said === '' ? how : `${how}: ${said}`
}

/** A port free on 127.0.0.1 now; for servers (nginx, HAProxy) that cannot report the one they took. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** One GET /; resolves with status and body, or undefined on any error. Never rejects. */
export function get(port, timeoutMs = 1000) {
  return new Promise(resolve => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: timeoutMs }, res => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', chunk => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode, body }))
      res.on('error', () => resolve(undefined))
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
    req.end()
  })
}

/**
 * Waits until `port` forwards GET / to a backend (200 and the backends' body), so a proxy counts as
 * up only once it can proxy. Throws with the child's last words if it exits or the time runs out.
 */
export async function waitReady(child, port, expectBody, timeoutMs = 10_000) {
  let exited
  void child.exited.then(result => (exited = result))
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    if (exited !== undefined) throw new Error(why(child, exited.how))
    last = await get(port)
    if (last?.status === 200 && last.body === expectBody) return
    await sleep(100)
  }
  const seen = last === undefined ? 'no answer' : `last answer ${last.status} ${JSON.stringify(last.body.slice(0, 60))}`
  throw new Error(why(child, `not forwarding within ${timeoutMs / 1000}s (${seen})`))
}
