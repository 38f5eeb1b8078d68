import { once } from 'node:events'
import { copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { connect as h2connect, type IncomingHttpHeaders } from 'node:http2'
import { request as httpsRequest } from 'node:https'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import { issue, makeCa, type Issued, type TestCa } from './fixtures/certs.js'
import { run } from './fixtures/cli.js'
import { fetchText, startUpstream } from './fixtures/servers.js'
import { tempDir } from './fixtures/temp.js'

/** `https://127.0.0.1:PORT` from the listening line. */
const httpsPortOf = (line: string): number => Number(/https:\/\/127\.0\.0\.1:(\d+)/.exec(line)?.[1])
const httpPortOf = (line: string): number => Number(/http:\/\/127\.0\.0\.1:(\d+)/.exec(line)?.[1])

/** Copies an issued pair to fixed names, as a renewal overwrites the files in place. */
function install(pair: Issued, dir: string): { cert: string; key: string } {
  copyFileSync(pair.cert, join(dir, 'site.crt'))
  copyFileSync(pair.key, join(dir, 'site.key'))
  return { cert: join(dir, 'site.crt'), key: join(dir, 'site.key') }
}

/** A GET over HTTPS/1.1 trusting `ca`: the status, body and the certificate served. */
function get(port: number, ca: TestCa, path = '/'): Promise<{ status: number; body: string; fingerprint: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest({ host: '127.0.0.1', servername: 'localhost', port, path, ca: ca.pem, agent: false }, res => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () =>
        resolve({
          status: res.statusCode as number,
          body,
          fingerprint: (res.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256,
        }),
      )
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('bad certificate files: one line naming the file, exit 1; an expired one is a warning', async t => {
  const ca = makeCa(t)
  const a = issue(ca, { names: ['localhost'] })
  const b = issue(ca, { names: ['other.test'] })
  const dir = tempDir(t, 'tls')
  writeFileSync(join(dir, 'not.pem'), 'not pem\n')
  const cases: [string[], RegExp][] = [
    [['--tls-cert', a.cert, '--tls-key', b.key], new RegExp(`^switchyard: tls-key ${b.key}: does not match the certificate in ${a.cert}$`)],
    [['--tls-cert', join(dir, 'missing.crt'), '--tls-key', a.key], /^switchyard: tls-cert \S+missing\.crt: cannot be read \(ENOENT\)$/],
    [['--tls-cert', join(dir, 'not.pem'), '--tls-key', a.key], /^switchyard: tls-cert \S+not\.pem: not a PEM certificate/],
  ]
  for (const [args, message] of cases) {
    const r = run(['--port', '0', '--host', '127.0.0.1', '--https-port', '0', '--upstream', '127.0.0.1:9', ...args])
    t.equal(await r.exit, 1, `exit 1: ${args.join(' ')}`)
    t.match(
      r.stderr.filter(l => l !== ''),
      [message],
      'one line, no stack trace',
    )
  }
  const old = issue(ca, { names: ['localhost'], from: Date.now() - 2 * 86_400_000, to: Date.now() - 86_400_000 })
  const r = run([
    '--port',
    'off',
    '--host',
    '127.0.0.1',
    '--https-port',
    '0',
    '--tls-cert',
    old.cert,
    '--tls-key',
    old.key,
    '--upstream',
    '127.0.0.1:9',
    '--quiet',
    '--no-http2',
  ])
  t.match(await r.line(/warning/), new RegExp(`^switchyard: warning: tls-cert ${old.cert}: expired on `), 'expired: a warning')
  const line = await r.line(/listening/)
  t.match(
    line,
    /^switchyard listening on https:\/\/127\.0\.0\.1:\d+ \(http\/1\.1\), round-robin over 127\.0\.0\.1:9$/,
    '--port off and --no-http2: HTTPS alone, HTTP/1.1 only',
  )
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'served until stopped')
})

t.test('SIGHUP: the access log reopened, the certificate swapped for new handshakes, a request in flight completed', async t => {
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => (release = resolve))
  let arrived: () => void = () => {}
  const came = new Promise<void>(resolve => (arrived = resolve))
  const up = await startUpstream(t, 'up', (req, res) => {
    if (req.url !== '/hold') return void res.end('ok')
    arrived()
    void held.then(() => res.end('held'))
  })
  const ca = makeCa(t)
  const dir = tempDir(t, 'tls')
  const first = issue(ca, { names: ['localhost', '127.0.0.1'] })
  const files = install(first, dir)
  const log = join(dir, 'access.log')
  const r = run([
    '--port',
    '0',
    '--host',
    '127.0.0.1',
    '--https-port',
    '0',
    '--tls-cert',
    files.cert,
    '--tls-key',
    files.key,
    '--upstream',
    up.spec,
    '--access-log',
    log,
    '--redirect-https',
  ])
  const line = await r.line(/listening/)
  t.match(
    line,
    /^switchyard listening on http:\/\/127\.0\.0\.1:\d+ \(redirecting to HTTPS\) and https:\/\/127\.0\.0\.1:\d+ \(h2, http\/1\.1\), /,
    'both listeners in one line',
  )
  const port = httpsPortOf(line)
  const redirect = await fetchText(httpPortOf(line), { headers: { host: 'localhost' } })
  t.same([redirect.status, redirect.headers.location], [308, `https://localhost:${port}/`], 'the plain port redirects')
  t.equal((await get(port, ca)).fingerprint, first.fingerprint, 'the first certificate')

  // A request in flight across the reload, on an h2 connection opened before it.
  const client = h2connect(`https://localhost:${port}`, { ca: ca.pem })
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  const stream = client.request({ ':path': '/hold' }, { endStream: true })
  const answered = once(stream, 'response') as Promise<[IncomingHttpHeaders]>
  await came

  renameSync(log, `${log}.1`)
  const renewed = issue(ca, { names: ['localhost', '127.0.0.1'] })
  install(renewed, dir)
  r.child.kill('SIGHUP')
  await r.line(/^switchyard: SIGHUP: access log reopened$/)
  t.match(
    await r.line(/SIGHUP: certificates/),
    new RegExp(`^switchyard: SIGHUP: certificates reloaded: ${files.cert} now ${renewed.fingerprint.slice(0, 23)}…, expires \\d{4}-`),
    'one line for the certificates',
  )
  await r.line(/SIGHUP: no --config file/)
  t.equal((await get(port, ca, '/after')).fingerprint, renewed.fingerprint, 'a new handshake sees the new certificate')
  release()
  const [head] = await answered
  t.equal(head[':status'], 200, 'the request in flight across the reload completed')
  stream.resume()
  await once(stream, 'end')

  // A renewal gone wrong: the old certificate stays, and one line says why.
  writeFileSync(files.key, 'broken')
  r.child.kill('SIGHUP')
  t.match(
    await r.line(/certificates reloaded in part/),
    /kept the certificate it had: tls-key \S+site\.key: not a PEM private key/,
    'a bad file keeps the old one',
  )
  t.equal((await get(port, ca, '/still')).fingerprint, renewed.fingerprint, 'and it is still served')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'exit 0')
  t.match(
    readFileSync(log, 'utf8'),
    /"GET \/after HTTP\/1\.1" 200 .* tls=TLSv1\.3\n/,
    'the reopened log has the lines after the reload, with tls=',
  )
  t.match(readFileSync(`${log}.1`, 'utf8'), /"GET \/ HTTP\/1\.1" 308 /, 'the rotated one those before')
})

t.test('--workers 2 serve HTTPS, and SIGHUP reaches every worker', async t => {
  const up = await startUpstream(t, 'up')
  const ca = makeCa(t)
  const dir = tempDir(t, 'tls')
  const files = install(issue(ca, { names: ['localhost', '127.0.0.1'] }), dir)
  const r = run([
    '--port',
    'off',
    '--host',
    '127.0.0.1',
    '--https-port',
    '0',
    '--tls-cert',
    files.cert,
    '--tls-key',
    files.key,
    '--upstream',
    up.spec,
    '--workers',
    '2',
    '--quiet',
  ])
  const line = await r.line(/listening/)
  t.match(
    line,
    /^switchyard listening on https:\/\/127\.0\.0\.1:\d+ \(h2, http\/1\.1\), .* \(2 workers\)$/,
    'two workers on the HTTPS port',
  )
  t.equal((await get(httpsPortOf(line), ca)).status, 200, 'they serve HTTPS')
  const renewed = issue(ca, { names: ['localhost', '127.0.0.1'] })
  install(renewed, dir)
  r.child.kill('SIGHUP')
  let lines = 0
  while (lines < 2) {
    await r.line(/SIGHUP: certificates reloaded/)
    lines = r.stdout.filter(l => /SIGHUP: certificates reloaded/.test(l)).length
    if (lines < 2) await new Promise(resolve => r.child.stdout?.once('data', resolve))
  }
  t.equal(lines, 2, 'each worker read its certificates again')
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'exit 0')
})
