// The CLI's admin listener and access log, run as the real built program.
import { once } from 'node:events'
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { portOf, run } from './fixtures/cli.js'
import { fetchText, startUpstream } from './fixtures/servers.js'
import { tempDir } from './fixtures/temp.js'

const adminPortOf = (line: string): number => Number(/^switchyard admin on http:\/\/[^ ]+:(\d+)\//.exec(line)?.[1])

/** Reads `file` until it has `n` lines (bounded: about 5 s), and returns them. */
async function lines(file: string, n: number): Promise<string[]> {
  let got: string[] = []
  for (let i = 0; i < 250; i++) {
    got = existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []
    if (got.length >= n) break
    await new Promise(resolve => setTimeout(resolve, 20))
  }
  return got
}

t.test('--admin-port 0, --access-log FILE --log-format json, a SIGHUP for logrotate and one for a new format', async t => {
  const a = await startUpstream(t, 'a')
  const dir = tempDir(t, 'admin')
  const log = join(dir, 'access.log')
  const config = join(dir, 'switchyard.json')
  const settings = { upstream: [a.spec], port: 0, host: '127.0.0.1', 'admin-port': 0, 'access-log': log, 'log-format': 'json' }
  writeFileSync(config, JSON.stringify(settings))
  const r = run(['--config', config])
  const port = portOf(await r.line(/listening/))
  const admin = adminPortOf(await r.line(/^switchyard admin on /))
  t.match(
    r.stdout.find(l => l.startsWith('switchyard admin on')),
    /^switchyard admin on http:\/\/127\.0\.0\.1:\d+\/ \(dashboard; also \/status\.json, \/metrics, \/events\)$/,
    'the dashboard URL is printed',
  )

  t.equal((await fetchText(port, { path: '/x?y=1', headers: { 'user-agent': 'tap' } })).status, 200)
  const [json] = await lines(log, 1)
  const entry = JSON.parse(json as string) as Record<string, unknown>
  t.match(
    entry,
    {
      type: 'access',
      client: '127.0.0.1',
      method: 'GET',
      path: '/x?y=1',
      httpVersion: '1.1',
      status: 200,
      bytes: 13,
      upstream: a.spec,
      retries: 0,
      userAgent: 'tap',
    },
    'a JSON line with the request',
  )
  t.match(entry.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'an ISO time')
  t.type(entry.upstreamMs, 'number')
  t.type(entry.totalMs, 'number')
  t.notOk('level' in entry || 'pid' in entry || 'hostname' in entry, "none of pino's event fields")
  t.notOk(
    r.stdout.some(l => l.includes('/x?y=1')),
    'nothing on stdout: the log has its own file',
  )

  const status = JSON.parse((await fetchText(admin, { path: '/status.json' })).body) as { requests: { total: number } }
  t.equal(status.requests.total, 1, 'the admin listener counts the request')

  // logrotate: move the file, SIGHUP, and the next line goes to a new file at the old path.
  renameSync(log, `${log}.1`)
  r.child.kill('SIGHUP')
  await r.line(/reloaded/)
  await fetchText(port, { path: '/after-rotate' })
  t.match((await lines(log, 1))[0], /"path":"\/after-rotate"/, 'after the rotation, a new file')
  t.equal((await lines(`${log}.1`, 1)).length, 1, 'the rotated file keeps its line')

  // A new format: the old log is written out, the new one takes over.
  writeFileSync(config, JSON.stringify({ ...settings, 'log-format': 'combined' }))
  r.child.kill('SIGHUP')
  while (r.stdout.filter(l => l.includes('reloaded')).length < 2) await new Promise(resolve => setTimeout(resolve, 10))
  await fetchText(port, { path: '/combined' })
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'exit 0')
  const after = readFileSync(log, 'utf8').split('\n').filter(Boolean)
  t.equal(after.length, 2, 'both lines are in the file at exit')
  t.match(after[1], /^127\.0\.0\.1 - - \[.*\] "GET \/combined HTTP\/1\.1" 200 \d+ "-" "-" upstream=/, 'the last one in combined format')
  t.notOk(
    r.stdout.some(l => l.includes('after a restart')),
    'the admin port did not change',
  )
})

t.test('a taken admin port is reported in one line, and traffic goes on', async t => {
  const a = await startUpstream(t, 'a')
  const taken = createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const busy = (taken.address() as { port: number }).port
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', a.spec, '--admin-port', String(busy), '--quiet'])
  const port = portOf(await r.line(/listening/))
  t.equal(
    await r.line(/admin listener off/),
    `switchyard: admin listener off, still serving traffic: cannot listen on 127.0.0.1:${busy}: the port is in use (EADDRINUSE); stop what holds it or choose another --admin-port`,
    'one line that says what to do',
  )
  t.equal((await fetchText(port)).body, 'hello from a\n', 'the proxy still serves')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('an IPv6 admin host is shown in brackets, and combined lines go to stdout', async t => {
  const a = await startUpstream(t, 'a')
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', a.spec, '--admin-port', '0', '--admin-host', '::1'])
  const port = portOf(await r.line(/listening/))
  const line = await r.line(/^switchyard admin on /)
  t.match(line, /^switchyard admin on http:\/\/\[::1\]:\d+\//, 'brackets around the address')
  const metrics = await new Promise<string>((resolve, reject) => {
    fetch(`http://[::1]:${adminPortOf(line)}/metrics`)
      .then(res => res.text())
      .then(resolve, reject)
  })
  t.match(metrics, /^# HELP switchyard_requests_total /m, 'the metrics answer on it')
  await fetchText(port, { path: '/stdout' })
  t.match(await r.line(/"GET \/stdout /), /^127\.0\.0\.1 - - \[/, 'the default: combined lines on stdout')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

t.test('bad admin and log settings exit 1 with one line', async t => {
  const dir = tempDir(t, 'badlog')
  const badHosts = join(dir, 'hosts.json')
  writeFileSync(badHosts, JSON.stringify({ 'admin-allowed-host': ['dash.example', '*.example'] }))
  const cases: [string[], RegExp][] = [
    [['--log-format', 'xml'], /^switchyard: log-format: "xml" is not one of combined, json$/],
    [
      ['--access-log', join(dir, 'no/such/dir.log')],
      /^switchyard: access-log .*no\/such\/dir\.log: cannot be opened for appending \(ENOENT\)$/,
    ],
    [['--access-log', ''], /^switchyard: access-log: "" is not a file, - or off$/],
    [['--admin-port', '70000'], /^switchyard: admin-port: "70000" is not a whole number from 0 to 65535$/],
    [['--admin-host', ''], /^switchyard: admin-host: "" is not an address to listen on$/],
    [
      ['--admin-allowed-host', 'http://dash.example'],
      /^switchyard: admin-allowed-host: "http:\/\/dash\.example" is not a host name with an optional :port, like admin\.example, admin\.example:9090 or \[fd00::1\]$/,
    ],
    [
      ['--admin-allowed-host', 'ok.example', '--admin-allowed-host', 'dash.example:0'],
      /^switchyard: admin-allowed-host: "dash\.example:0" is not a host name/,
    ],
    [['--config', badHosts], /^switchyard: admin-allowed-host: "\*\.example" is not a host name/],
  ]
  await Promise.all(
    cases.map(async ([args, message]) => {
      const r = run(['--port', '0', ...args])
      t.equal(await r.exit, 1, `${args.join(' ')}: exit 1`)
      t.equal(r.stderr.length, 1, `${args.join(' ')}: one line`)
      t.match(r.stderr[0], message, `${args.join(' ')}: names the value`)
    }),
  )
})

t.test('--access-log off: no lines; a reload to a file that cannot be opened is rejected', async t => {
  const a = await startUpstream(t, 'a')
  const dir = tempDir(t, 'off')
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ upstream: [a.spec], port: 0, host: '127.0.0.1', 'access-log': 'off' }))
  const r = run(['--config', config])
  const port = portOf(await r.line(/listening/))
  await fetchText(port, { path: '/quiet' })
  writeFileSync(config, JSON.stringify({ upstream: [a.spec], port: 0, host: '127.0.0.1', 'access-log': join(dir, 'missing/x.log') }))
  r.child.kill('SIGHUP')
  t.match(
    await r.line(/reload rejected/),
    /access-log .*missing\/x\.log: cannot be opened for appending \(ENOENT\)$/,
    'the old configuration stays',
  )
  await fetchText(port, { path: '/still-quiet' })
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
  t.notOk(
    r.stdout.some(l => l.includes('quiet HTTP')),
    'no access lines at all',
  )
})

t.test('a SIGHUP whose access log cannot be opened again is reported, and the old file is kept', async t => {
  const a = await startUpstream(t, 'a')
  const dir = tempDir(t, 'reopen')
  const logs = join(dir, 'logs')
  mkdirSync(logs)
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ upstream: [a.spec], port: 0, host: '127.0.0.1', 'access-log': join(logs, 'access.log') }))
  const r = run(['--config', config])
  const port = portOf(await r.line(/listening/))
  rmSync(logs, { recursive: true })
  r.child.kill('SIGHUP')
  t.match(
    await r.line(/cannot be opened again/),
    /^switchyard: access-log .*access\.log: cannot be opened again \(ENOENT\); still writing to the file it had$/,
    'one line says so',
  )
  t.equal((await fetchText(port)).status, 200, 'and the balancer still serves')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)
})

/** GET `path` from the admin listener with the Host a browser on `host` would send. */
const asHost = (admin: number, host: string, path = '/status.json') => fetchText(admin, { path, headers: { host } })

t.test('a rebound Host gets 421; --admin-allowed-host names, from the file, a reload and the flags', async t => {
  const a = await startUpstream(t, 'a')
  const dir = tempDir(t, 'hosts')
  const config = join(dir, 'switchyard.json')
  const settings = { upstream: [a.spec], port: 0, host: '127.0.0.1', 'admin-port': 0, quiet: true }
  writeFileSync(config, JSON.stringify({ ...settings, 'admin-allowed-host': ['Dash.Example'] }))
  const r = run(['--config', config])
  const admin = adminPortOf(await r.line(/^switchyard admin on /))
  for (const path of ['/', '/status.json', '/metrics', '/events']) {
    const evil = await asHost(admin, `evil.example:${admin}`, path)
    t.equal(evil.status, 421, `${path}: a rebound name gets 421`)
    t.equal(
      evil.body,
      `421 Misdirected Request: Host "evil.example:${admin}" does not name this admin listener; to allow it, add --admin-allowed-host evil.example:${admin}\n`,
      `${path}: one line`,
    )
  }
  t.equal((await asHost(admin, 'dash.example:8443')).status, 200, 'a name from the config file, on any port')
  t.equal((await asHost(admin, `localhost:${admin}`)).status, 200, 'localhost with the admin port')

  // A reload swaps the names at once.
  writeFileSync(config, JSON.stringify({ ...settings, 'admin-allowed-host': 'other.example:8443' }))
  r.child.kill('SIGHUP')
  await r.line(/reloaded/)
  t.equal((await asHost(admin, 'other.example:8443')).status, 200, 'after a reload: the new name')
  t.equal((await asHost(admin, 'dash.example:8443')).status, 421, 'and not the old one')
  t.notOk(
    r.stdout.some(l => l.includes('after a restart')),
    'no restart needed',
  )
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0)

  // Flags, repeated; the same in a cluster's primary.
  for (const workers of ['1', '2']) {
    const f = run([
      '--port',
      '0',
      '--host',
      '127.0.0.1',
      '--upstream',
      a.spec,
      '--quiet',
      '--workers',
      workers,
      '--admin-port',
      '0',
      '--admin-allowed-host',
      'one.example',
      '--admin-allowed-host',
      'two.example:9443',
    ])
    const port = adminPortOf(await f.line(/^switchyard admin on /))
    const got = await Promise.all(
      ['one.example', 'two.example:9443', 'two.example:9444', `evil.example:${port}`].map(async h => (await asHost(port, h)).status),
    )
    t.same(got, [200, 200, 421, 421], `--workers ${workers}: each flag's name answered, on its port; others 421`)
    f.child.kill('SIGTERM')
    t.equal(await f.exit, 0)
  }
})

t.test('--help shows --admin-allowed-host as a list that is empty by default', async t => {
  const r = run(['--help'])
  t.equal(await r.exit, 0)
  const help = r.stdout.join(' ').replace(/\s+/g, ' ')
  t.match(
    help,
    /--admin-allowed-host A Host name .*?NAME for any port, NAME:PORT for one; repeat for more \[default: none\]/,
    'none, not off: the check itself is always on',
  )
})

t.test('SIGHUP reopens the access log without --config and with it; no line is lost across the rename', async t => {
  const a = await startUpstream(t, 'a')
  for (const how of ['flags only', 'a --config file'] as const) {
    const dir = tempDir(t, 'rotate')
    const log = join(dir, 'access.log')
    const settings = { upstream: [a.spec], port: 0, host: '127.0.0.1', 'access-log': log }
    const config = join(dir, 'switchyard.json')
    writeFileSync(config, JSON.stringify(settings))
    const r =
      how === 'flags only'
        ? run(['--upstream', a.spec, '--port', '0', '--host', '127.0.0.1', '--access-log', log])
        : run(['--config', config])
    const port = portOf(await r.line(/listening/))
    await fetchText(port, { path: '/before' })
    await lines(log, 1)
    renameSync(log, `${log}.1`)
    // Requests all through the rotation: each is written once, to the old file or the new one.
    const during = Array.from({ length: 40 }, (_, i) => fetchText(port, { path: `/during-${i}` }))
    r.child.kill('SIGHUP')
    t.match(await r.line(/access log reopened/), /^switchyard: SIGHUP: access log reopened$/, `${how}: one line says so`)
    await Promise.all(during)
    await fetchText(port, { path: '/after' })
    r.child.kill('SIGTERM')
    t.equal(await r.exit, 0, `${how}: exit 0`)
    const rotated = readFileSync(`${log}.1`, 'utf8').split('\n').filter(Boolean)
    const fresh = readFileSync(log, 'utf8').split('\n').filter(Boolean)
    const paths = [...rotated, ...fresh].map(l => /"GET (\S+) HTTP/.exec(l)?.[1]).sort()
    t.same(paths, ['/after', '/before', ...Array.from({ length: 40 }, (_, i) => `/during-${i}`)].sort(), `${how}: every line once`)
    t.match(rotated[0], /"GET \/before /, `${how}: the rotated file starts with the line before`)
    t.match(fresh.at(-1), /"GET \/after /, `${how}: the new file ends with the line after`)
  }
})
