import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { closedPort, fetchText, startUpstream } from './fixtures/servers.js'

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url))

interface Run {
  child: ChildProcess
  stdout: string[]
  stderr: string[]
  /** Resolves with the first stdout line matching `re`. */
  line(re: RegExp): Promise<string>
  exit: Promise<number | null>
}

/** Starts the real CLI from its TypeScript source, with tap's loader, so it counts for coverage. */
function run(args: string[], ipc = false): Run {
  const child = spawn(process.execPath, [...process.execArgv, CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe', ...(ipc ? (['ipc'] as const) : [])],
  })
  const stdout: string[] = []
  const stderr: string[] = []
  const waiters: [RegExp, (line: string) => void][] = []
  const split = (into: string[]) => {
    let partial = ''
    return (chunk: Buffer) => {
      const lines = (partial + chunk.toString()).split('\n')
      partial = lines.pop() as string
      for (const line of lines) {
        into.push(line)
        for (const [re, resolve] of waiters) if (re.test(line)) resolve(line)
      }
    }
  }
  child.stdout?.on('data', split(stdout))
  child.stderr?.on('data', split(stderr))
  const exit = once(child, 'exit').then(([code]) => code as number | null)
  return {
    child,
    stdout,
    stderr,
    exit,
    line: re => {
      const seen = stdout.find(l => re.test(l))
      return seen !== undefined ? Promise.resolve(seen) : new Promise(resolve => waiters.push([re, resolve]))
    },
  }
}

const portOf = (line: string): number => Number(/:(\d+),/.exec(line)?.[1])

t.test('bad input exits 1 with one line naming the bad value', async t => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-cli-'))
  const badJson = join(dir, 'bad.json')
  writeFileSync(badJson, '{"port": }')
  const cases: [string[], RegExp][] = [
    [['--bogus'], /^switchyard: Unknown argument: bogus$/],
    [['--upstream', 'nope'], /^switchyard: upstream: "nope" is not host:port/],
    [['--port', '99999'], /^switchyard: port: "99999" is not a whole number from 0 to 65535$/],
    [['--port'], /^switchyard: Not enough arguments following: port$/],
    [['--config', join(dir, 'missing.json')], /^switchyard: config .*missing\.json: cannot be read \(ENOENT\)$/],
    [['--config', badJson], /^switchyard: config .*bad\.json: not valid JSON/],
  ]
  await Promise.all(
    cases.map(async ([args, message]) => {
      const r = run(args)
      t.equal(await r.exit, 1, `${args.join(' ')}: exit 1`)
      t.equal(r.stderr.length, 1, `${args.join(' ')}: one line`)
      t.match(r.stderr[0], message, `${args.join(' ')}: names the value`)
    }),
  )
})

t.test('listen failures exit 1 with one line that says what to do', async t => {
  const taken = createServer().listen(0, '127.0.0.1')
  await once(taken, 'listening')
  t.teardown(() => taken.close())
  const port = String((taken.address() as { port: number }).port)
  const inUse = run(['--host', '127.0.0.1', '--port', port])
  // 192.0.2.1 is TEST-NET-1: never a local address.
  const foreign = run(['--host', '192.0.2.1', '--port', '0'])
  // Ports below 1024 need CAP_NET_BIND_SERVICE. CI runs as root, so drop that capability
  // (util-linux setpriv) to be refused for real; anyone else is refused anyway.
  const node = [process.execPath, ...process.execArgv, CLI, '--port', '81', '--host', '127.0.0.1']
  const argv = process.getuid?.() === 0 ? ['setpriv', '--bounding-set', '-net_bind_service', ...node] : node
  const low = spawn(argv[0] as string, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] })
  let lowErr = ''
  low.stderr.on('data', (d: Buffer) => (lowErr += d))
  const [lowCode] = await once(low, 'exit')
  t.equal(await inUse.exit, 1, 'in use: exit 1')
  t.match(inUse.stderr, [/^switchyard: cannot listen on 127\.0\.0\.1:\d+: the port is in use \(EADDRINUSE\)/], 'in use: one line')
  t.equal(await foreign.exit, 1, 'not a local address: exit 1')
  t.match(foreign.stderr, [/^switchyard: cannot listen on 192\.0\.2\.1:0: .*EADDRNOTAVAIL/], 'not local: one line')
  t.equal(lowCode, 1, 'port 81 without the privilege: exit 1')
  t.match(lowErr, /^switchyard: cannot listen on 127\.0\.0\.1:81: permission denied \(EACCES\); .*setcap cap_net_bind_service/, 'EACCES says why and what to do')
  t.equal(lowErr.trim().split('\n').length, 1, 'EACCES: one line')
})

t.test('serves, logs, and stops on SIGTERM after in-flight requests finish', async t => {
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('done'), 1500)
    else res.end('a')
  })
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-cli-'))
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ port: 1, upstream: [await closedPort()] }))
  // Flags override the file: port 0 and the live upstream.
  const r = run(['--config', config, '--port', '0', '--host', '127.0.0.1', '--upstream', a.spec])
  const port = portOf(await r.line(/^switchyard listening on http:\/\/127\.0\.0\.1:\d+, round-robin over /))
  t.equal((await fetchText(port)).body, 'a', 'proxies to the upstream from the flags')
  t.match(await r.line(/^GET \/ 200 /), new RegExp(`^GET / 200 ${a.spec} \\d+\\.\\dms$`), 'one access line per request')
  const slow = fetchText(port, { path: '/slow' })
  while (a.seen.length < 2) await new Promise(resolve => setTimeout(resolve, 10))
  r.child.kill('SIGTERM')
  // The same stop, delivered twice (terminal and launcher): it must not cut the drain short.
  setTimeout(() => r.child.kill('SIGINT'), 200)
  t.equal((await slow).body, 'done', 'the in-flight request completed')
  t.equal(await r.exit, 0, 'then the process exited 0')
  t.ok(r.stdout.includes('switchyard: SIGTERM, draining for up to 30s'), 'the stop is logged')
})

t.test('a second stop signal after a second exits at once', async t => {
  const a = await startUpstream(t, 'a', () => {})
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', a.spec, '--quiet'])
  const port = portOf(await r.line(/listening/))
  const hanging = fetchText(port).catch((err: Error) => err)
  while (a.seen.length < 1) await new Promise(resolve => setTimeout(resolve, 10))
  r.child.kill('SIGINT')
  await r.line(/SIGINT, draining/)
  await new Promise(resolve => setTimeout(resolve, 1100))
  r.child.kill('SIGINT')
  t.equal(await r.exit, 1, 'exit 1 without waiting for the drain')
  t.ok(r.stdout.includes('switchyard: SIGINT again, exiting now'), 'says so')
  t.type(await hanging, Error, 'the unfinished request was cut')
  t.notOk(r.stdout.some(l => l.startsWith('GET')), '--quiet: no access lines')
})

t.test('stops when the launcher that started it goes away', async t => {
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', '127.0.0.1:9', '--policy', 'first', '--sticky-cookie', 'sy'], true)
  t.match(await r.line(/listening/), /, first over 127\.0\.0\.1:9$/, 'the listening line names the policy')
  await r.line(/warning: no --sticky-secret/)
  t.pass('a made-up sticky secret is warned about')
  r.child.disconnect()
  t.equal(await r.exit, 0, 'exit 0')
  t.ok(r.stdout.includes('switchyard: launcher gone, draining for up to 30s'), 'says why')
})

t.test('--help lists every setting with its default', async t => {
  const r = run(['--help'])
  t.equal(await r.exit, 0, 'exit 0')
  const help = r.stdout.join(' ').replace(/\s+/g, ' ')
  t.match(help, /--upstream An upstream.*?repeat for more \[default: 127\.0\.0\.1:5000 127\.0\.0\.1:5001\]/, 'upstream default')
  t.match(help, /--health-path [^[]*\[default: off\]/, 'a setting that is off by default')
  t.match(help, /--connect-timeout [^[]*\[default: 5s\]/, 'a duration default')
})

t.test('SIGHUP re-reads the config file; flags still win; a bad file is rejected', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-reload-'))
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ upstream: [a.spec], port: 0, quiet: true }))
  const r = run(['--config', config, '--host', '127.0.0.1'])
  const port = portOf(await r.line(/listening/))
  t.equal((await fetchText(port)).body, 'hello from a\n', 'serves from the file')

  // Steady load across the reload: no request may be dropped.
  let loading = true
  const statuses: number[] = []
  const load = Array.from({ length: 4 }, async () => {
    while (loading) statuses.push((await fetchText(port)).status)
  })
  writeFileSync(config, JSON.stringify({ upstream: [b.spec], port: 0, host: '0.0.0.0' }))
  r.child.kill('SIGHUP')
  await r.line(/reloaded/)
  await new Promise(resolve => setTimeout(resolve, 200))
  loading = false
  await Promise.all(load)
  t.same([...new Set(statuses)], [200], `all ${statuses.length} requests under load across the SIGHUP were 200`)
  t.equal((await fetchText(port)).body, 'hello from b\n', 'after SIGHUP, the new upstream')
  t.match(await r.line(/^GET \/ 200 /), b.spec, 'and the new file turned access lines on')
  t.notOk(r.stdout.some(l => l.includes('after a restart')), 'the --host flag still wins over the file, so no restart is asked')

  writeFileSync(config, JSON.stringify({ upstream: [b.spec], port: 1, quiet: true }))
  r.child.kill('SIGHUP')
  await r.line(/applies only after a restart/)
  t.pass('a changed port is refused with a log line')

  writeFileSync(config, '{"upstream": ["nope"]}')
  r.child.kill('SIGHUP')
  await r.line(/reload rejected/)
  t.equal((await fetchText(port)).body, 'hello from b\n', 'a bad file leaves the running configuration in place')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'still alive until stopped, then exit 0')
})

t.test('SIGHUP without --config is logged and ignored', async t => {
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', '127.0.0.1:9'])
  await r.line(/listening/)
  r.child.kill('SIGHUP')
  await r.line(/SIGHUP ignored: there is no --config file/)
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'the process lived on: SIGHUP does not kill it')
})
