// The cluster's primary, with real worker processes sharing one port: the built CLI with --workers 2.
import { existsSync, readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import type { StatusSnapshot } from '../../src/index.js'
import { portOf, run, type Run } from '../fixtures/cli.js'
import { parseExposition } from '../fixtures/prometheus.js'
import { closedPort, fetchText, startUpstream } from '../fixtures/servers.js'
import { tempDir } from '../fixtures/temp.js'

const adminPortOf = (line: string): number => Number(/^switchyard admin on http:\/\/[^ ]+:(\d+)\//.exec(line)?.[1])

/** Starts the CLI with `--workers 2` and the admin listener; stops it at teardown. */
async function cluster(t: Test, args: string[], quiet = true): Promise<{ r: Run; port: number; admin: number }> {
  const r = run(['--port', '0', '--host', '127.0.0.1', '--workers', '2', '--admin-port', '0', ...(quiet ? ['--quiet'] : []), ...args])
  t.teardown(() => {
    r.child.kill('SIGKILL')
  })
  const port = portOf(await r.line(/listening on/))
  const admin = adminPortOf(await r.line(/^switchyard admin on /))
  return { r, port, admin }
}

async function status(admin: number): Promise<StatusSnapshot> {
  const reply = await fetchText(admin, { path: '/status.json' })
  if (reply.status !== 200) throw new Error(`/status.json answered ${reply.status}: ${reply.body}`)
  return JSON.parse(reply.body) as StatusSnapshot
}

/**
 * Polls the status until `done` holds, for up to 15 s (a deadline, not a count of polls: a
 * loaded machine polls less often); returns the last one, for the assertions that follow.
 */
async function until(admin: number, done: (s: StatusSnapshot) => boolean): Promise<StatusSnapshot> {
  const deadline = Date.now() + 15_000
  let s = await status(admin)
  while (!done(s) && Date.now() < deadline) {
    await new Promise(resolve => setTimeout(resolve, 50))
    s = await status(admin)
  }
  return s
}

/** The pids of a process's children. */
function childPids(pid: number): number[] {
  return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)
}

t.test('--workers 2: both workers serve, and the admin listener adds their counts up exactly', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { r, port, admin } = await cluster(t, ['--upstream', a.spec, '--upstream', b.spec])
  t.match(
    r.stdout.find(l => l.includes('listening on')),
    /, round-robin over .* \(2 workers\)$/,
    'the listening line says how many workers',
  )
  t.equal(childPids(r.child.pid as number).length, 2, 'two worker processes')
  // Fresh connections: node:cluster deals them out to the workers in turn.
  for (let i = 0; i < 40; i++) t.equal((await fetchText(port)).status, 200, `request ${i + 1} of 40: 200`)
  // Counts may lag a little behind; then they must be exact.
  const s = await until(admin, x => x.requests.total === 40)
  t.equal(s.requests.total, 40, '40 requests counted')
  t.equal(s.workers, 2)
  t.equal(s.processes.length, 2, 'one entry per worker')
  t.ok(
    s.processes.every(p => p.requests > 0),
    `both workers served: ${s.processes.map(p => p.requests).join(' + ')}`,
  )
  t.equal(
    s.processes.reduce((x, p) => x + p.requests, 0),
    40,
  )
  t.equal(
    s.upstreams.reduce((x, u) => x + u.requests, 0),
    40,
    'the upstreams got 40 between them',
  )
  t.ok(
    s.upstreams.every(u => u.requests >= 10),
    'each worker alternates: both upstreams served a share',
  )
  const m = parseExposition((await fetchText(admin, { path: '/metrics' })).body)
  const total = m.samples.filter(x => x.name === 'switchyard_requests_total').reduce((x, y) => x + y.value, 0)
  t.equal(total, 40, 'and /metrics, aggregated by prom-client over the workers, counts 40 too')
  t.ok(
    m.samples.some(x => x.name === 'process_resident_memory_bytes'),
    'with the process metrics',
  )

  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'SIGTERM: the workers drain, the primary exits 0')
})

t.test('a failure seen by one worker takes the upstream out of the other too', async t => {
  const dead = await closedPort()
  const good = await startUpstream(t, 'good')
  // Access lines on: each says how many retries its request took.
  const { r, port, admin } = await cluster(t, ['--upstream', dead, '--upstream', good.spec, '--fail-timeout', '60s'], false)
  // The first request goes to the dead upstream first, is refused there, and is retried.
  t.equal((await fetchText(port)).status, 200, 'refused, then served by the good one')
  await until(admin, x => x.upstreams[0]?.state === 'down')
  for (let i = 0; i < 20; i++) t.equal((await fetchText(port)).status, 200)
  const s = await until(admin, x => x.requests.total === 21)
  t.equal(s.requests.total, 21)
  t.ok(
    s.processes.every(p => p.requests > 0),
    'both workers served requests',
  )
  t.equal(s.upstreams[0]?.failures, 1, 'one failure in all: the other worker never tried the dead upstream')
  t.equal(s.upstreams[0]?.retries, 1)
  t.equal(s.upstreams[1]?.requests, 21, 'the good upstream served everything')
  t.equal(r.stdout.filter(l => l.includes('marked down')).length, 1, 'the flip is logged once, by the worker that saw it')

  const retried = () => r.stdout.filter(l => / retries=1 /.test(l)).length
  t.equal(retried(), 1, 'one request in all was retried: the first')

  // A replacement worker starts with that view too. (The counts of a killed worker go with it.)
  const [victim] = childPids(r.child.pid as number) as [number]
  process.kill(victim, 'SIGKILL')
  await r.line(/starting another/)
  await until(admin, x => x.processes.length === 2 && !x.processes.some(p => p.pid === victim))
  for (let i = 0; i < 20; i++) t.equal((await fetchText(port, { path: '/after' })).status, 200)
  const after = await until(admin, x => x.processes.every(p => p.requests > 0) && x.processes.reduce((n, p) => n + p.requests, 0) >= 20)
  t.ok(
    after.processes.every(p => p.requests > 0),
    'both workers, the new one too, served requests',
  )
  while (r.stdout.filter(l => l.includes('"GET /after ')).length < 20) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(retried(), 1, 'and no request after the restart was retried: the new worker never tried the dead upstream')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('active checks run once, in the primary, for every worker; SIGHUP reaches the workers', async t => {
  const dead = await closedPort()
  const good = await startUpstream(t, 'good')
  const other = await startUpstream(t, 'other')
  const dir = tempDir(t, 'workers')
  const config = join(dir, 'switchyard.json')
  const settings = { upstream: [dead, good.spec], 'health-path': '/', 'health-interval': '100ms', 'unhealthy-threshold': 1 }
  writeFileSync(config, JSON.stringify(settings))
  const { r, port, admin } = await cluster(t, ['--config', config])
  const down = await until(admin, x => x.upstreams[0]?.state === 'down')
  t.match(down.upstreams[0]?.reason, /^active check failed 1 time: GET \/ -> ECONNREFUSED/, "down by the primary's check")
  // Replace a worker: the new one must know too.
  const [victim] = childPids(r.child.pid as number) as [number]
  process.kill(victim, 'SIGKILL')
  await r.line(/starting another/)
  await until(admin, x => x.processes.length === 2 && !x.processes.some(p => p.pid === victim))
  for (let i = 0; i < 20; i++) t.equal((await fetchText(port)).status, 200)
  const s = await until(admin, x => x.requests.total === 20)
  t.equal(s.upstreams[0]?.failures, 0, 'no worker ever sent a request to the upstream the checks took down')
  t.equal(r.stdout.filter(l => l.includes('marked down')).length, 1, 'one check, one flip, one log line: not one per worker')
  const checks = good.seen.filter(x => x.headers['user-agent'] === 'switchyard-health-check').length
  const rounds = (Date.now() - s.startedAt) / 100
  t.ok(checks <= rounds + 2, `checks ran once per interval (${checks} in about ${Math.round(rounds)} intervals), not once per worker`)

  writeFileSync(config, JSON.stringify({ ...settings, upstream: [other.spec] }))
  r.child.kill('SIGHUP')
  const reloaded = await until(admin, x => x.upstreams.length === 1)
  t.same(
    reloaded.upstreams.map(u => u.id),
    [other.spec],
    "the primary's view follows the reload",
  )
  while (r.stdout.filter(l => l.includes('reloaded')).length < 3) await new Promise(resolve => setTimeout(resolve, 20))
  t.pass('the primary and both workers reloaded')
  for (let i = 0; i < 4; i++) t.equal((await fetchText(port)).body, 'hello from other\n', 'every worker sends to the new upstream')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test("the primary's check lifts a passive mark-down a worker made, for every worker; one line down, one up", async t => {
  // a resets /boom; its /healthz passes all along, so only passive health takes it out.
  const a = await startUpstream(t, 'a', (req, res) => (req.url === '/boom' ? void req.socket.destroy() : void res.end('hello from a\n')))
  const b = await startUpstream(t, 'b')
  const { r, port, admin } = await cluster(t, [
    '--upstream',
    a.spec,
    '--upstream',
    b.spec,
    '--fail-timeout',
    '60s',
    '--health-path',
    '/healthz',
    '--health-interval',
    '100ms',
  ])
  t.equal((await fetchText(port, { path: '/boom' })).body, 'hello from b\n', 'reset by a, retried on b')
  const up = await r.line(/is up again/)
  t.equal(
    up,
    `upstream ${a.spec} is up again: active check passed: GET /healthz -> 200`,
    "the primary's next check brought it back, long before 60 s",
  )
  t.match(
    r.stdout.filter(l => l.includes('marked down')),
    [/^upstream .* marked down: 1 failure\(s\) in 60s, last: ECONNRESET/],
    'the worker that saw the failure logged it, once',
  )
  const s = await until(admin, x => x.upstreams[0]?.state === 'up')
  t.equal(s.upstreams[0]?.reason, 'active check passed: GET /healthz -> 200', "the dashboard's why")
  // Each worker alternates strictly over the upstreams it has up: with a up in both, a takes
  // half of the requests whichever worker each connection went to; down in one, about a quarter.
  const before = a.seen.filter(x => x.url === '/').length
  for (let i = 0; i < 40; i++) t.equal((await fetchText(port)).status, 200, `request ${i + 1} of 40: 200`)
  const served = await until(admin, x => x.requests.total === 41)
  t.ok(
    served.processes.every(p => p.requests > 0),
    `both workers served: ${served.processes.map(p => p.requests).join(' + ')}`,
  )
  const toA = a.seen.filter(x => x.url === '/').length - before
  t.ok(toA >= 19 && toA <= 21, `a took ${toA} of 40: both workers send to it again`)
  t.equal(
    r.stdout.filter(l => l.includes('marked down') || l.includes('up again')).length,
    2,
    'one outage, two lines in all, across three processes',
  )
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'SIGTERM: exit 0')
})

t.test('on SIGHUP only the workers open a new access log; the primary, which serves nothing, does not', async t => {
  const good = await startUpstream(t, 'good')
  const dir = tempDir(t, 'workers')
  const config = join(dir, 'switchyard.json')
  const log = join(dir, 'access.log')
  writeFileSync(config, JSON.stringify({ upstream: [good.spec], 'access-log': 'off' }))
  const { r, port } = await cluster(t, ['--config', config], false)
  writeFileSync(config, JSON.stringify({ upstream: [good.spec], 'access-log': log }))
  r.child.kill('SIGHUP')
  while (r.stdout.filter(l => l.includes('reloaded')).length < 3) await new Promise(resolve => setTimeout(resolve, 20))
  for (let i = 0; i < 4; i++) t.equal((await fetchText(port)).status, 200)
  const lines = (): number => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean).length : 0)
  for (let i = 0; i < 100 && lines() < 4; i++) await new Promise(resolve => setTimeout(resolve, 20))
  t.equal(lines(), 4, 'the workers write their lines to the new file')
  const holds = (pid: number): boolean =>
    readdirSync(`/proc/${pid}/fd`).some(fd => {
      try {
        return readlinkSync(`/proc/${pid}/fd/${fd}`) === log
      } catch {
        return false
      }
    })
  const primary = r.child.pid as number
  t.notOk(holds(primary), 'the primary holds no descriptor of it')
  t.same(childPids(primary).map(holds), [true, true], 'each worker does')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('a sticky cookie made up by the primary is honoured by every worker', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const { r, port } = await cluster(t, ['--upstream', a.spec, '--upstream', b.spec, '--sticky-cookie', 'sy'])
  t.ok(
    r.stdout.some(l => l.includes('warning: no --sticky-secret')),
    'the made-up secret is warned about once',
  )
  const first = await fetchText(port)
  const cookie = String(first.headers['set-cookie']?.[0]).split(';')[0] as string
  t.match(cookie, /^sy=/, 'the first answer pins the client')
  // Fresh connections go to both workers in turn: each must accept the other's cookie.
  const bodies = new Set<string>()
  for (let i = 0; i < 10; i++) bodies.add((await fetchText(port, { headers: { cookie } })).body)
  t.same([...bodies], [first.body], 'every request went to the pinned upstream, whichever worker took it')
  t.equal(
    r.stdout.filter(l => l.includes('warning: no --sticky-secret')).length,
    1,
    'the workers were handed the secret: no warning from them',
  )
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('a killed worker is replaced, and the other finishes its requests', async t => {
  const slow = await startUpstream(t, 'slow', (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('done'), 1000)
    else res.end('ok')
  })
  const { r, port, admin } = await cluster(t, ['--upstream', slow.spec])
  // Four slow requests on fresh connections. node:cluster deals connections out, but not
  // strictly in turn: read from the status which worker holds how many.
  const pending = Array.from({ length: 4 }, () =>
    fetchText(port, { path: '/slow' }).then(
      x => x.status,
      () => 'cut',
    ),
  )
  while (slow.seen.filter(x => x.url === '/slow').length < 4) await new Promise(resolve => setTimeout(resolve, 10))
  const held = await until(admin, x => x.processes.reduce((n, p) => n + p.connectionsOpen, 0) === 4)
  t.equal(
    held.processes.reduce((n, p) => n + p.connectionsOpen, 0),
    4,
    'four client connections open',
  )
  // The victim: the worker with fewer of them (perhaps none); the survivor's must all complete.
  const [fewer, more] = [...held.processes].sort((x, y) => x.connectionsOpen - y.connectionsOpen) as [
    StatusSnapshot['processes'][number],
    StatusSnapshot['processes'][number],
  ]
  const [victim, survivor] = [fewer.pid, more.pid]
  process.kill(victim, 'SIGKILL')
  const line = await r.line(/exited with signal SIGKILL; starting another/)
  t.equal(line, `switchyard: worker ${victim} exited with signal SIGKILL; starting another`, 'the primary says so')
  const results = await Promise.all(pending)
  t.equal(
    results.filter(x => x === 200).length,
    more.connectionsOpen,
    `the survivor's ${more.connectionsOpen} requests completed (${results.join(', ')})`,
  )
  t.equal(results.filter(x => x === 'cut').length, fewer.connectionsOpen, `the killed worker's ${fewer.connectionsOpen} were cut`)
  const s = await until(admin, x => x.processes.length === 2 && !x.processes.some(p => p.pid === victim))
  t.equal(s.processes.length, 2, 'two workers again')
  t.ok(
    s.processes.some(p => p.pid === survivor),
    'the survivor is one of them',
  )
  t.notOk(
    s.processes.some(p => p.pid === victim),
    'and the killed one is gone',
  )
  for (let i = 0; i < 4; i++) t.equal((await fetchText(port)).body, 'ok', 'still serving')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('--workers with a taken port exits 1; a bad --workers value is refused', async t => {
  const a = await startUpstream(t, 'a')
  const first = await cluster(t, ['--upstream', a.spec])
  const second = run(['--port', String(first.port), '--host', '127.0.0.1', '--workers', '2', '--upstream', a.spec, '--quiet'])
  t.equal(await second.exit, 1, 'exit 1')
  t.match(second.stderr.join('\n'), /the port is in use \(EADDRINUSE\)/, 'the worker says why')
  t.match(second.stderr.join('\n'), /worker \d+ exited with code 1 before it listened; stopping/, 'and the primary stops')
  const bad = run(['--workers', 'many'])
  t.equal(await bad.exit, 1)
  t.same(bad.stderr, ['switchyard: workers: "many" is not a whole number from 1 to 64, or auto'])
})
