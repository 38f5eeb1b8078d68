import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { portOf, run } from './fixtures/cli.js'
import { closedPort, fetchText, startUpstream } from './fixtures/servers.js'
import { tempDir } from './fixtures/temp.js'

t.test('serves, logs, and stops on SIGTERM after in-flight requests finish', async t => {
  const a = await startUpstream(t, 'a', (req, res) => {
    if (req.url === '/slow') setTimeout(() => res.end('done'), 1500)
    else res.end('a')
  })
  const dir = tempDir(t, 'cli')
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ port: 1, upstream: [await closedPort()] }))
  // Flags override the file: port 0 and the live upstream.
  const r = run(['--config', config, '--port', '0', '--host', '127.0.0.1', '--upstream', a.spec])
  const port = portOf(await r.line(/^switchyard listening on http:\/\/127\.0\.0\.1:\d+, round-robin over /))
  t.equal((await fetchText(port)).body, 'a', 'proxies to the upstream from the flags')
  t.match(
    await r.line(/"GET \/ HTTP/),
    new RegExp(
      `^127\\.0\\.0\\.1 - - \\[\\d\\d/[A-Z][a-z]{2}/\\d{4}(:\\d\\d){3} \\+0000\\] "GET / HTTP/1\\.1" 200 1 "-" "-" upstream=${a.spec} upstream_time=\\d+\\.\\d{3} request_time=\\d+\\.\\d{3} retries=0 cache=-$`,
    ),
    'one access line per request, nginx combined plus the upstream fields',
  )
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
  t.notOk(
    r.stdout.some(l => l.includes('"GET /')),
    '--quiet: no access lines',
  )
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

t.test('SIGHUP re-reads the config file; flags still win; a bad file is rejected', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const dir = tempDir(t, 'reload')
  const config = join(dir, 'switchyard.json')
  writeFileSync(config, JSON.stringify({ upstream: [a.spec], port: 0, quiet: true }))
  const r = run(['--config', config, '--host', '127.0.0.1'])
  const port = portOf(await r.line(/listening/))
  t.equal((await fetchText(port)).body, 'hello from a\n', 'serves from the file')

  // Steady load across the reload: no request may be dropped.
  let loading = true
  const statuses: number[] = []
  const bodies = new Set<string>()
  const load = Array.from({ length: 4 }, async () => {
    while (loading) {
      const reply = await fetchText(port)
      statuses.push(reply.status)
      bodies.add(reply.body)
    }
  })
  writeFileSync(config, JSON.stringify({ upstream: [b.spec], port: 0, host: '0.0.0.0' }))
  r.child.kill('SIGHUP')
  await r.line(/reloaded/)
  // The load goes on until the new upstream has answered some of it.
  while (!bodies.has('hello from b\n')) await new Promise(resolve => setTimeout(resolve, 10))
  loading = false
  await Promise.all(load)
  t.same([...new Set(statuses)], [200], `all ${statuses.length} requests under load across the SIGHUP were 200`)
  t.equal((await fetchText(port)).body, 'hello from b\n', 'after SIGHUP, the new upstream')
  // A request that began on a before the reload may log first; wait for one served by b.
  t.ok(
    await r.line(new RegExp(`"GET / HTTP/1\\.1" 200 .* upstream=${b.spec.replace(/\./g, '\\.')} `)),
    'and the new file turned access lines on',
  )
  t.notOk(
    r.stdout.some(l => l.includes('after a restart')),
    'the --host flag still wins over the file, so no restart is asked',
  )

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

t.test('SIGHUP without --config: the log part and the config part each say what they did, and the process lives on', async t => {
  const r = run(['--port', '0', '--host', '127.0.0.1', '--upstream', '127.0.0.1:9'])
  await r.line(/listening/)
  r.child.kill('SIGHUP')
  await r.line(/^switchyard: SIGHUP: access log on stdout, nothing to reopen$/)
  await r.line(/^switchyard: SIGHUP: no --config file, so the configuration stays as started$/)
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'the process lived on: SIGHUP does not kill it')
})
