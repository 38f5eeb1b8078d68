// `npm run soak`: a longer fault scenario against the built CLIs on 127.0.0.1, printed as a table.
//
//   npm run soak                                   60 s, 16 concurrent clients, 3 backends
//   npm run soak -- --duration 20s --concurrency 8 --backends 4
//
// N backends (s1..sN) and the balancer, with active health checks, run under constant load: GET /,
// and every 10th request a POST /echo whose echo is checked. The duration is cut into five equal
// phases, each opened by one fault: baseline; kill (SIGKILL s2); restart (s2 again, same port);
// hang (SIGSTOP s3); resume (SIGCONT s3). The balancer's `marked down` / `is up again` lines are
// timestamped as they arrive, to time detection and recovery.
//
// A request belongs to the phase in which it finished, so the failures a fault causes land in that
// fault's row. The report (stdout) says which failures are expected and flags the others.
// Progress goes to stderr. Exit 0 when the run completed, whatever it measured; 1 on bad flags or
// when the stack could not be started. Every child is killed at the end and on Ctrl-C; each also
// has an IPC channel, so that it stops by itself if this script is killed outright (a watchdog
// wakes s3 first if it is stopped at that moment).

import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { arch, cpus, platform } from 'node:os'
import { dirname, join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { memoryKb } from './bench/proc.mjs'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')
const CLI = { backend: 'packages/backend/dist/cli.js', balancer: 'packages/balancer/dist/cli.js' }
const USAGE = 'usage: npm run soak -- [--duration 60s] [--concurrency 16] [--backends 3]'
/** The balancer under test; the timings below are read against these values. */
const BALANCER_FLAGS = [
  '--health-path',
  '/healthz',
  '--health-interval',
  '500ms',
  '--health-timeout',
  '300ms',
  '--healthy-threshold',
  '2',
  '--unhealthy-threshold',
  '2',
  '--timeout',
  '2s',
  '--fail-timeout',
  '2s',
  '--quiet',
]
/** Above the balancer's worst case (connect timeout 5 s), so a client timeout means the balancer hung. */
const CLIENT_TIMEOUT_MS = 10_000
const START_TIMEOUT_MS = 10_000
/** A loop whose request failed without an answer waits this long, so a dead balancer is not spun on. */
const ERROR_BACKOFF_MS = 20
const PHASES = ['baseline', 'kill', 'restart', 'hang', 'resume']

const die = message => {
  process.stderr.write(`soak: ${message}\n`)
  process.exit(1)
}
const progress = line => void process.stderr.write(`soak: ${line}\n`)

function options() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        duration: { type: 'string', default: '60s' },
        concurrency: { type: 'string', default: '16' },
        backends: { type: 'string', default: '3' },
      },
    }))
  } catch (err) {
    die(`${err.message.split('\n')[0]} (${USAGE})`)
  }
  const d = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(values.duration)
  const durationMs = d ? Number(d[1]) * { ms: 1, s: 1000, m: 60_000 }[d[2] ?? 's'] : NaN
  // Five phases; a hang needs --timeout (2 s) to show as 504s inside its own phase.
  if (!(durationMs >= 15_000 && durationMs <= 3_600_000))
    die(
      `--duration ${JSON.stringify(values.duration)}: give 15s to 60m (five phases; a hang needs 2s to show), e.g. 90s, 2m or 45 (${USAGE})`,
    )
  const integer = (name, min, max) => {
    const v = values[name]
    if (!/^\d+$/.test(v) || Number(v) < min || Number(v) > max)
      die(`--${name} ${JSON.stringify(v)}: give a whole number from ${min} to ${max} (${USAGE})`)
    return Number(v)
  }
  // s2 and s3 are the victims, and s1 must be left to serve.
  return { durationMs, concurrency: integer('concurrency', 1, 1024), backends: integer('backends', 3, 32) }
}

const opts = options()
for (const cli of Object.values(CLI)) {
  if (!existsSync(join(root, cli))) die(`${cli} is missing: build first with \`npx tsc -b\``)
}

const clock = () => performance.now()
let t0 = clock()
/** Everything the children said or did, with the time it arrived. */
const events = []
const children = new Set()

/** Starts a CLI and resolves with its port once it prints `<who> listening on http://127.0.0.1:<port>`. */
function start(name, cli, args) {
  const child = spawn(process.execPath, [join(root, cli), ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  child.soakName = name
  children.add(child)
  const listening = new RegExp(`^${name === 'balancer' ? 'switchyard' : name} listening on http://127\\.0\\.0\\.1:(\\d+)`)
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.soakExpected = true
      child.kill('SIGKILL')
      reject(new Error(`${name} printed no "listening on" line within ${START_TIMEOUT_MS / 1000}s`))
    }, START_TIMEOUT_MS)
    createInterface({ input: child.stdout }).on('line', line => {
      events.push({ t: clock(), name, line })
      const m = listening.exec(line)
      if (m) {
        clearTimeout(timer)
        resolve({ name, child, port: Number(m[1]), at: clock() })
      }
    })
    createInterface({ input: child.stderr }).on('line', line => {
      events.push({ t: clock(), name, line: `stderr: ${line}` })
      process.stderr.write(`[${name}] ${line}\n`)
    })
    child.on('exit', (code, signal) => {
      children.delete(child)
      clearTimeout(timer)
      const how = signal === null ? `code ${code}` : `signal ${signal}`
      events.push({ t: clock(), name, line: `exited with ${how}`, exit: true, expected: child.soakExpected === true })
      reject(new Error(`${name} exited with ${how} before listening`))
    })
  })
}

/** Ends every child still running; SIGCONT first, since a stopped process cannot act on anything. */
function killAll(signal) {
  for (const child of children) {
    child.soakExpected = true
    child.kill('SIGCONT')
    child.kill(signal)
  }
}
process.on('exit', () => killAll('SIGKILL'))
for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
]) {
  process.on(signal, () => {
    progress(`${signal}: killing ${children.size} process(es) and exiting without a report`)
    process.exit(code)
  })
}

// --- the stack -------------------------------------------------------------------------------

const backends = new Map()
let balancer
try {
  for (let i = 1; i <= opts.backends; i++) {
    const id = `s${i}`
    backends.set(id, await start(id, CLI.backend, ['--port', '0', '--id', id, '--quiet', '--cache-ttl', '0']))
  }
  const upstreams = [...backends.values()].flatMap(b => ['--upstream', `127.0.0.1:${b.port}`])
  balancer = await start('balancer', CLI.balancer, ['--port', '0', '--host', '127.0.0.1', ...upstreams, ...BALANCER_FLAGS])
} catch (err) {
  die(`could not start the stack: ${err.message}`)
}
/** `127.0.0.1:<port>` as the balancer names an upstream -> s1..sN. */
const byAddress = new Map([...backends.values()].map(b => [`127.0.0.1:${b.port}`, b.name]))
const memoryAtStart = memoryKb(balancer.child.pid)
// Killed outright while s3 is stopped, this script could not wake it, and a stopped s3 cannot see
// its IPC channel close. A watchdog that outlives us sends it SIGCONT; s3 then sees the channel
// closed and stops. (SIGCONT to a process that is not stopped does nothing.)
const watchdog = spawn(
  process.execPath,
  ['-e', `process.on('disconnect', () => { try { process.kill(${backends.get('s3').child.pid}, 'SIGCONT') } catch {} })`],
  {
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  },
)
children.add(watchdog)
watchdog.on('exit', () => children.delete(watchdog))

// --- the load --------------------------------------------------------------------------------

const agent = new Agent({ keepAlive: true, maxSockets: opts.concurrency })

/** One request; resolves with `{ status, servedBy, text }` or `{ error }`, never rejects. */
function send(method, path, body) {
  return new Promise(resolve => {
    let settled = false
    const done = result => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      resolve(result)
    }
    const failed = err => done({ error: err.code ?? err.message })
    const headers = body === undefined ? {} : { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) }
    const req = request({ host: '127.0.0.1', port: balancer.port, method, path, agent, headers }, res => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', chunk => (text += chunk))
      res.on('end', () => done({ status: res.statusCode, servedBy: res.headers['x-served-by'], text }))
      res.on('error', failed)
      res.on('close', () => done({ error: 'response cut short' }))
    })
    const timer = setTimeout(
      () => req.destroy(Object.assign(new Error(), { code: `no answer in ${CLIENT_TIMEOUT_MS / 1000}s` })),
      CLIENT_TIMEOUT_MS,
    )
    req.on('error', failed)
    req.end(body)
  })
}

const stats = PHASES.map(name => ({
  name,
  fault: '',
  sent: 0,
  done: 0,
  ok: 0,
  502: 0,
  503: 0,
  504: 0,
  other: 0,
  errors: 0,
  ms: [],
  failures: new Map(),
  servedBy: new Map(),
}))
let phase = 0
/** When each fault happened, and when the victim first served a request sent after its recovery. */
const marks = {}
const firstServed = {}
let lastOk = 0
let stall = { ms: 0, at: 0 }

/** Outcome of one finished request, into the stats of the phase it finished in. */
function record(method, sentAt, result, body) {
  const now = clock()
  const s = stats[phase]
  s.done++
  s.ms.push(now - sentAt)
  let failure
  if (result.error !== undefined) failure = `error ${result.error}`
  else if (result.status >= 200 && result.status < 300) {
    const expected = method === 'POST' ? body : `Hello, World! from ${result.servedBy}`
    if (result.text !== expected) failure = `error ${result.status} with a wrong body: ${JSON.stringify(result.text.slice(0, 60))}`
  } else {
    // The balancer names the upstream whose try failed last: "(last: 127.0.0.1:41234 ECONNRESET)".
    const last = /\(last: (\S+) (\S+)\)/.exec(result.text)
    failure = `${result.status}${last ? ` from ${byAddress.get(last[1]) ?? last[1]} ${last[2]}` : ''}`
  }
  if (failure === undefined) {
    s.ok++
    s.servedBy.set(result.servedBy, (s.servedBy.get(result.servedBy) ?? 0) + 1)
    for (const [victim, since] of [
      ['s2', marks.restart],
      ['s3', marks.resume],
    ]) {
      if (result.servedBy === victim && since !== undefined && sentAt >= since && firstServed[victim] === undefined)
        firstServed[victim] = now
    }
    if (lastOk > 0 && now - lastOk > stall.ms) stall = { ms: now - lastOk, at: lastOk, phase: s.name }
    lastOk = now
    return
  }
  const column = failure.startsWith('error') ? 'errors' : [502, 503, 504].includes(result.status) ? result.status : 'other'
  s[column]++
  // When each was sent, to tell a request in flight at the fault from one sent after it (bounded).
  const key = `${method} ${failure}`
  const sent = s.failures.get(key) ?? []
  if (sent.length < 100_000) sent.push(sentAt)
  s.failures.set(key, sent)
}

let seq = 0
async function loop(loopId, endAt, maxRequests) {
  for (let i = 0; i < maxRequests && clock() < endAt; i++) {
    const n = ++seq
    const post = n % 10 === 0
    const body = post ? `soak loop ${loopId} request ${n}` : undefined
    stats[phase].sent++
    const sentAt = clock()
    const result = await send(post ? 'POST' : 'GET', post ? '/echo' : '/', body)
    record(post ? 'POST' : 'GET', sentAt, result, body)
    if (result.error !== undefined) await sleep(ERROR_BACKOFF_MS)
  }
}

/** Starts s2 again on its port; a port taken in the meantime (an outgoing socket) gets a few tries. */
async function restart(old) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(old.name, CLI.backend, ['--port', String(old.port), '--id', old.name, '--quiet', '--cache-ttl', '0'])
    } catch (err) {
      if (attempt === 10) throw err
      progress(`restart of ${old.name} failed (${err.message}), trying again`)
      await sleep(200)
    }
  }
}

const FAULTS = [
  ['none', async () => {}],
  [
    'SIGKILL s2',
    async () => {
      const s2 = backends.get('s2')
      s2.child.soakExpected = true
      s2.child.once('exit', () => (marks.dead = clock()))
      s2.child.kill('SIGKILL')
      marks.kill = clock()
    },
  ],
  [
    's2 started again on its port',
    async () => {
      const s2 = await restart(backends.get('s2'))
      backends.set('s2', s2)
      marks.restart = s2.at
    },
  ],
  [
    'SIGSTOP s3',
    async () => {
      backends.get('s3').child.kill('SIGSTOP')
      marks.hang = clock()
    },
  ],
  [
    'SIGCONT s3',
    async () => {
      backends.get('s3').child.kill('SIGCONT')
      marks.resume = clock()
    },
  ],
]

const date = new Date()
const phaseMs = opts.durationMs / PHASES.length
progress(
  `${opts.backends} backends and the balancer (pid ${balancer.child.pid}) up; ${opts.durationMs / 1000}s of load at ${opts.concurrency} concurrent, phases of ${phaseMs / 1000}s`,
)
t0 = clock()
const endAt = t0 + opts.durationMs
// Bounded twice: by the clock, and by a count no loop can reach through a proxy (50 per ms).
const loops = Array.from({ length: opts.concurrency }, (_, i) => loop(i + 1, endAt, Math.ceil(opts.durationMs) * 50))
let setupFailed
for (let p = 0; p < PHASES.length; p++) {
  await sleep(t0 + p * phaseMs - clock())
  if (p > 0) stats[p - 1].rss = memoryKb(balancer.child.pid).rss
  phase = p
  stats[p].startAt = clock()
  const [fault, act] = FAULTS[p]
  stats[p].fault = fault
  progress(`+${((clock() - t0) / 1000).toFixed(1)}s ${PHASES[p]}: ${fault}`)
  try {
    await act()
  } catch (err) {
    setupFailed = `${PHASES[p]}: ${err.message}`
  }
}
await Promise.all(loops)
const loadEnd = clock()
const memoryAtEnd = memoryKb(balancer.child.pid)
stats[PHASES.length - 1].rss = memoryAtEnd.rss
agent.destroy()
if (setupFailed !== undefined) die(`a fault could not be applied, so the run is not the scenario (${setupFailed})`)

// Stop: SIGTERM lets the balancer drain (nothing is in flight), then SIGKILL whatever is left.
const exits = [...children].map(child => new Promise(resolve => child.once('exit', resolve)))
killAll('SIGTERM')
await Promise.race([Promise.all(exits), sleep(3000)])
killAll('SIGKILL')

// --- the report ------------------------------------------------------------------------------

const since = t => `+${((t - t0) / 1000).toFixed(3)}s`
const fmt = ms => (Number.isFinite(ms) ? ms.toFixed(1) : '-')
const pct = (sorted, p) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)]
const mb = kb => (Number.isFinite(kb) ? `${(kb / 1024).toFixed(1)} MB` : 'n/a')
const out = []
const print = line => out.push(line)

print(`## Soak: ${opts.durationMs / 1000} s, ${opts.concurrency} concurrent clients, ${opts.backends} backends`)
print('')
print(
  '| phase | fault at its start | sent | completed | 2xx | 502 | 503 | 504 | other | errors | p50 ms | p99 ms | max ms | balancer RSS MB at end |',
)
print('|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|')
for (const s of stats) {
  const sorted = Float64Array.from(s.ms).sort()
  print(
    `| ${s.name} | ${s.fault} | ${s.sent} | ${s.done} | ${s.ok} | ${s[502]} | ${s[503]} | ${s[504]} | ${s.other} | ${s.errors} | ` +
      `${fmt(pct(sorted, 0.5))} | ${fmt(pct(sorted, 0.99))} | ${fmt(sorted[sorted.length - 1])} | ${fmt(s.rss / 1024)} |`,
  )
}
print('')
print('sent: started in the phase; completed: finished in it, answered or not, split by outcome; latency of the completed.')
print(
  `Served by (2xx per backend): ${stats
    .map(
      s =>
        `${s.name} ${[...s.servedBy]
          .sort()
          .map(([id, n]) => `${id}=${n}`)
          .join(' ')}`,
    )
    .join('; ')}`,
)
print('')

/**
 * Why a failure is the honest cost of its fault, or undefined when it should not happen. `before`:
 * sent before the victim was gone (for the kill: before we saw s2 exit, which is after it died).
 */
function expected(phaseName, key, before) {
  if (phaseName === 'kill' && /^POST 502 from s2 /.test(key)) {
    // A new connection to a dead port is refused and tried elsewhere, so this was a pooled connection.
    return before ? 'in flight on s2 when it died, and a POST is never sent twice' : undefined
  }
  if (phaseName !== 'hang' || !/^(GET|POST) 504 from s3 /.test(key)) return undefined
  // A stopped process still accepts connections (the kernel does), so nothing fails fast.
  const when = before ? 'in flight on s3 when it stopped' : 'sent to s3 before health checks marked it down'
  return `${when}; no headers within --timeout 2s, and a timeout is not retried`
}
print('Failures (the balancer names the upstream it tried last; times are from the fault):')
let unexpected = 0
for (const s of stats) {
  const at = s.name === 'kill' ? (marks.dead ?? marks.kill) : s.startAt
  for (const [key, sent] of s.failures) {
    for (const before of [true, false]) {
      const group = sent.filter(t => t < at === before)
      if (group.length === 0) continue
      const why = expected(s.name, key, before)
      if (why === undefined) unexpected += group.length
      const when =
        group
          .slice(0, 6)
          .map(t => `${t - s.startAt >= 0 ? '+' : ''}${(t - s.startAt).toFixed(0)}`)
          .join(', ') + (group.length > 6 ? ', …' : '')
      const what =
        s.name === 'kill'
          ? before
            ? ', sent before s2 was seen dead'
            : ', sent after s2 was seen dead'
          : before
            ? ', sent before the fault'
            : ''
      print(
        `- ${s.name}: ${key}${what} ×${group.length} (sent at ${when} ms) — ${why === undefined ? '**unexpected**' : `expected: ${why}`}`,
      )
    }
  }
}
if (stats.every(s => s.failures.size === 0)) print('- none')
print(`- unexpected failures in all: ${unexpected}. Expected: GETs fail only with 504 during the hang; POSTs also with 502 at the kill.`)
if (marks.dead !== undefined) print(`- s2's exit was seen ${(marks.dead - marks.kill).toFixed(1)} ms after the SIGKILL.`)
print('')

const health = events
  .map(e => ({ ...e, m: /^upstream (\S+) (marked down|is up again): (.*)$/.exec(e.line) }))
  .filter(e => e.name === 'balancer' && e.m)
  .map(e => ({ t: e.t, who: byAddress.get(e.m[1]) ?? e.m[1], down: e.m[2] === 'marked down', reason: e.m[3] }))
const after = (who, down, from, active) =>
  health.find(h => h.who === who && h.down === down && h.t >= from && (!active || h.reason.startsWith('active')))
const delay = (h, from) =>
  h === undefined ? 'never' : `${Math.round(h.t - from)} ms (${h.reason.startsWith('active') ? 'active check' : 'passive'})`
function timings(who, downMark, upMark, how) {
  const { [downMark]: down, [upMark]: up } = marks
  if (down === undefined || up === undefined) return
  const firstDown = after(who, true, down, false)
  const activeDown = after(who, true, down, true)
  print(
    `- ${who} marked down after ${how[0]}: ${delay(firstDown, down)}` +
      (activeDown !== firstDown ? `; by active checks: ${delay(activeDown, down)}` : ''),
  )
  const ups = health.filter(h => h.who === who && !h.down && h.t >= up)
  const served = firstServed[who]
  print(
    `- ${who} back after ${how[1]}: ${ups.length === 0 ? 'no "is up again" line' : ups.map(h => delay(h, up)).join(', then ')}; ` +
      `first 2xx from it: ${served === undefined ? 'never' : `${Math.round(served - up)} ms`}`,
  )
}
print('Health (times from the fault; `passive` = a failed request, `active` = /healthz every 500 ms, 2 in a row):')
timings('s2', 'kill', 'restart', ['the SIGKILL', 'its restart (from its "listening" line)'])
timings('s3', 'hang', 'resume', ['the SIGSTOP', 'the SIGCONT'])
print(`- longest time without a 2xx: ${Math.round(stall.ms)} ms, from ${since(stall.at)} (${stall.phase ?? '-'})`)
const crashed = events.filter(e => e.exit && !e.expected)
for (const e of crashed) print(`- **${e.name} ${e.line} at ${since(e.t)}, not killed by the soak**`)
print(`- balancer RSS: ${mb(memoryAtStart.rss)} at start, ${mb(memoryAtEnd.rss)} at end (peak ${mb(memoryAtEnd.hwm)})`)
const cpu = cpus()
print(
  `- machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'} × ${cpu.length}, Node ${process.version}, ${platform()} ${arch()}; ${date.toISOString()}`,
)
print('')
print('Balancer log during the run (from the start of the load):')
for (const e of events.filter(e => e.name === 'balancer' && e.t >= t0 && e.t <= loadEnd)) print(`    ${since(e.t)} ${e.line}`)
process.stdout.write(`${out.join('\n')}\n`)
