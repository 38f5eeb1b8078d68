import { once } from 'node:events'
import { copyFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { CertificateStore } from '../../src/server/certificate-store.js'
import { issue, makeCa, type Issued, type TestCa } from '../fixtures/certs.js'
import { tempDir } from '../fixtures/temp.js'

/** Copies an issued pair to fixed file names, as a renewal overwrites the files in place. */
function install(pair: Issued, dir: string, name: string): { cert: string; key: string } {
  copyFileSync(pair.cert, join(dir, `${name}.crt`))
  copyFileSync(pair.key, join(dir, `${name}.key`))
  return { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) }
}

/** A TLS server on port 0 whose certificates come from `store`, as the listener sets it up. */
async function serve(t: Test, store: CertificateStore): Promise<number> {
  // Connections stay open until the client closes them.
  const server = createServer({ SNICallback: store.SNICallback, ...store.default.pem }, s => s.on('error', () => {}))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  return (server.address() as { port: number }).port
}

/** The fingerprint a handshake with `servername` (none: no SNI) is served. */
async function served(port: number, ca: TestCa, servername?: string): Promise<string | undefined> {
  const socket = connect({
    port,
    host: '127.0.0.1',
    ca: ca.pem,
    rejectUnauthorized: false,
    ...(servername === undefined ? {} : { servername }),
  })
  await once(socket, 'secureConnect')
  const fingerprint = (socket as TLSSocket).getPeerX509Certificate()?.fingerprint256
  socket.destroy()
  return fingerprint
}

t.test('SNI picks by name: exact before wildcard, first on a tie, the default for the rest', async t => {
  const ca = makeCa(t)
  const first = issue(ca, { names: ['first.test', '*.example.test'] })
  const www = issue(ca, { names: ['www.example.test', 'first.test'] })
  const store = new CertificateStore([first, www], 'TLSv1.2')
  const port = await serve(t, store)
  const cases: [string | undefined, Issued, string][] = [
    ['first.test', first, 'an exact name both have: the first given'],
    ['api.example.test', first, 'a wildcard'],
    ['www.example.test', www, 'an exact name beats an earlier wildcard'],
    ['WWW.Example.TEST.', www, 'case and a trailing dot do not matter'],
    ['a.b.example.test', first, 'a wildcard covers one label only: the default'],
    ['example.test', first, 'nor the bare domain: the default'],
    ['localhost', first, 'an unknown name: the default'],
    [undefined, first, 'no SNI (an IP address, say): the default'],
  ]
  for (const [name, want, what] of cases) t.equal(await served(port, ca, name), want.fingerprint, what)
  t.same(store.warnings(), [], 'nothing to warn about')
  t.same(
    store.certificates.map(c => c.fingerprint),
    [first.fingerprint, www.fingerprint],
    'both, in the order given',
  )
})

t.test('a store needs a pair, and refuses to start on a bad one', async t => {
  t.throws(
    () => new CertificateStore([], 'TLSv1.2'),
    { name: 'ConfigError', message: /^tls-cert: at least one --tls-cert FILE --tls-key FILE pair is needed$/ },
    'none',
  )
  const ca = makeCa(t)
  const good = issue(ca)
  t.throws(
    () => new CertificateStore([good, { cert: good.cert, key: join(ca.dir, 'nope.key') }], 'TLSv1.2'),
    { name: 'ConfigError', message: /^tls-key \S+nope\.key: cannot be read/ },
    'the second pair is checked too',
  )
})

t.test('an expired certificate is served, with a warning', async t => {
  const ca = makeCa(t)
  const old = issue(ca, { names: ['old.test'], from: Date.now() - 2 * 86_400_000, to: Date.now() - 86_400_000 })
  const store = new CertificateStore([old], 'TLSv1.2')
  t.match(store.warnings(), [new RegExp(`^tls-cert ${old.cert}: expired on `)], 'one line for it')
})

t.test('reload swaps renewed files in for new handshakes; a bad file keeps the old certificate', async t => {
  const ca = makeCa(t)
  const dir = tempDir(t, 'tls')
  const one = install(issue(ca, { names: ['one.test'] }), dir, 'one')
  const twoFirst = issue(ca, { names: ['two.test'] })
  const two = install(twoFirst, dir, 'two')
  const store = new CertificateStore([one, two], 'TLSv1.3')
  const port = await serve(t, store)
  const before = await served(port, ca, 'one.test')

  // An open connection, opened before the renewal.
  const open = connect({ port, host: '127.0.0.1', servername: 'two.test', ca: ca.pem })
  await once(open, 'secureConnect')

  const renewed = issue(ca, { names: ['two.test', 'three.test'] })
  install(renewed, dir, 'two')
  const r = store.reload()
  t.ok(r.ok, 'every pair read')
  t.match(
    r.line,
    new RegExp(
      `^certificates reloaded: ${one.cert} unchanged, expires \\d{4}-\\d\\d-\\d\\d; ${two.cert} now ${renewed.fingerprint.slice(0, 23)}…, expires `,
    ),
    'one line for the lot',
  )
  t.equal(await served(port, ca, 'two.test'), renewed.fingerprint, 'a new handshake gets the new certificate')
  t.equal(await served(port, ca, 'three.test'), renewed.fingerprint, 'and its new names')
  t.equal(await served(port, ca, 'one.test'), before, 'the unchanged pair serves as before')
  t.notOk(open.destroyed, 'the connection opened before is still open')
  t.equal(open.getPeerX509Certificate()?.fingerprint256, twoFirst.fingerprint, 'with the certificate it was opened with')
  open.destroy()

  // A renewal gone wrong: the key of another certificate.
  copyFileSync(issue(ca, { names: ['x.test'] }).key, two.key)
  const bad = store.reload()
  t.notOk(bad.ok, 'not every pair read')
  t.match(
    bad.line,
    new RegExp(
      `^certificates reloaded in part: ${one.cert} unchanged, .*; ${two.cert} kept the certificate it had: tls-key ${two.key}: does not match the certificate in ${two.cert}$`,
    ),
    'the line says which and why',
  )
  t.equal(await served(port, ca, 'three.test'), renewed.fingerprint, 'handshakes still get the certificate it had')

  // Renewed with an expired one: swapped in (as at start), and said so.
  const expired = issue(ca, { names: ['two.test'], from: Date.now() - 2 * 86_400_000, to: Date.now() - 86_400_000 })
  install(expired, dir, 'two')
  const late = store.reload()
  t.ok(late.ok, 'read')
  t.match(
    late.line,
    new RegExp(`${two.cert} now .*, expires \\d{4}-\\d\\d-\\d\\d \\(tls-cert ${two.cert}: expired on `),
    'with the warning',
  )
  writeFileSync(two.cert, 'garbage')
  t.match(store.reload().line, /kept the certificate it had: tls-cert \S+: not a PEM certificate/, 'garbage is kept out too')
})
