import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { connect, createServer, type TLSSocket } from 'node:tls'
import t from 'tap'
import { altNames, loadCertificate, validityWarning } from '../../src/server/certificates.js'
import { encryptKey, issue, makeCa } from '../fixtures/certs.js'
import { tempDir } from '../fixtures/temp.js'

const DAY = 86_400_000

t.test('a good pair: names, addresses, fingerprint and dates, and a context a real handshake uses', async t => {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['Example.test', '*.example.test', '127.0.0.1', '::1'] })
  const c = loadCertificate(leaf, 'TLSv1.2')
  t.same(c.names, ['example.test', '*.example.test'], 'DNS names, lower case, wildcard kept')
  t.same(c.addresses, ['127.0.0.1', '0:0:0:0:0:0:0:1'], 'IP addresses kept apart')
  t.equal(c.fingerprint, leaf.fingerprint, 'the SHA-256 fingerprint of the leaf')
  t.ok(c.validTo.getTime() > Date.now() && c.validFrom.getTime() < Date.now(), 'valid now')
  t.equal(validityWarning(c), undefined, 'nothing to warn about')

  const server = createServer({ SNICallback: (_name, cb) => cb(null, c.context), ...c.pem }, s => s.end('ok'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const port = (server.address() as { port: number }).port
  const socket = connect({ port, host: '127.0.0.1', servername: 'a.example.test', ca: ca.pem })
  await once(socket, 'secureConnect')
  t.equal(
    (socket as TLSSocket).getPeerX509Certificate()?.fingerprint256,
    leaf.fingerprint,
    'the handshake served that certificate, trusted by the CA',
  )
  socket.destroy()
})

t.test("a chain file: the names are the leaf's, the intermediates ride along", async t => {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['chain.test'] })
  const dir = tempDir(t, 'tls')
  const chain = join(dir, 'chain.pem')
  writeFileSync(chain, Buffer.concat([leaf.pem.cert, ca.pem]))
  const c = loadCertificate({ cert: chain, key: leaf.key }, 'TLSv1.3')
  t.same(c.names, ['chain.test'], 'the first certificate is the one served')
})

t.test('no subjectAltName: the CN is the name; neither: no name at all', async t => {
  const ca = makeCa(t)
  t.same(
    loadCertificate(issue(ca, { names: [], subject: '/CN=Old.Style.test' }), 'TLSv1.2').names,
    ['old.style.test'],
    'the CN, lower case',
  )
  t.same(loadCertificate(issue(ca, { names: [], subject: '/O=Nameless' }), 'TLSv1.2').names, [], 'no name: only ever a default certificate')
})

t.test('expired and not yet valid certificates load, with a one-line warning naming the file', async t => {
  const ca = makeCa(t)
  const old = issue(ca, { names: ['old.test'], from: Date.now() - 60 * DAY, to: Date.now() - 30 * DAY })
  const c = loadCertificate(old, 'TLSv1.2')
  t.match(
    validityWarning(c),
    new RegExp(`^tls-cert ${old.cert}: expired on \\d{4}-\\d\\d-\\d\\d; served anyway, but clients will refuse it until it is renewed$`),
    'expired',
  )
  const early = issue(ca, { names: ['early.test'], from: Date.now() + 30 * DAY, to: Date.now() + 60 * DAY })
  t.match(
    validityWarning(loadCertificate(early, 'TLSv1.2')),
    new RegExp(`^tls-cert ${early.cert}: not valid before \\d{4}-\\d\\d-\\d\\d; clients will refuse it until then$`),
    'not yet valid',
  )
})

t.test('each bad file is one line that names it', async t => {
  const ca = makeCa(t)
  const a = issue(ca, { names: ['a.test'] })
  const b = issue(ca, { names: ['b.test'] })
  const dir = tempDir(t, 'tls')
  const file = (name: string, text: string): string => {
    writeFileSync(join(dir, name), text)
    return join(dir, name)
  }
  const notPem = file('not.pem', 'hello\n')
  const badCert = file('bad-cert.pem', '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n')
  const badKey = file('bad-key.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n')
  const encrypted = encryptKey(a.key, join(dir, 'encrypted.key'))
  const weak = issue(ca, { names: ['weak.test'], keyType: 'rsa:512' })
  mkdirSync(join(dir, 'a-directory'))
  const cases: [string, { cert: string; key: string }, RegExp][] = [
    ['missing certificate', { cert: join(dir, 'missing.crt'), key: a.key }, /^tls-cert \S+missing\.crt: cannot be read \(ENOENT\)$/],
    ['a directory for a key', { cert: a.cert, key: join(dir, 'a-directory') }, /^tls-key \S+a-directory: cannot be read \(EISDIR\)$/],
    ['not PEM', { cert: notPem, key: a.key }, /^tls-cert \S+not\.pem: not a PEM certificate \(no -----BEGIN CERTIFICATE----- block\)$/],
    [
      'PEM that does not parse',
      { cert: badCert, key: a.key },
      /^tls-cert \S+bad-cert\.pem: certificate 1 of the chain does not parse \(ERR_\w+\)$/,
    ],
    ['a certificate for a key', { cert: a.cert, key: a.cert }, /^tls-key \S+\.crt: not a PEM private key/],
    ['a key that does not parse', { cert: a.cert, key: badKey }, /^tls-key \S+bad-key\.pem: the private key does not parse \(ERR_\w+\)$/],
    ['an encrypted key', { cert: a.cert, key: encrypted }, /^tls-key \S+encrypted\.key: the key is encrypted; give it unencrypted/],
    [
      "another certificate's key",
      { cert: a.cert, key: b.key },
      new RegExp(`^tls-key ${b.key}: does not match the certificate in ${a.cert}$`),
    ],
    ['a key OpenSSL will not serve', weak, /^tls-cert \S+: OpenSSL refuses the pair \(ERR_SSL_\w+: .+\)$/],
  ]
  for (const [what, files, message] of cases) {
    t.throws(() => loadCertificate(files, 'TLSv1.2'), { name: 'ConfigError', message }, what)
    try {
      loadCertificate(files, 'TLSv1.2')
    } catch (err) {
      t.notOk((err as Error).message.includes('\n'), `${what}: one line`)
    }
  }
})

t.test('altNames reads what Node prints, quoted values and other kinds included', async t => {
  t.same(altNames(undefined), { dns: [], ip: [] }, 'no subjectAltName')
  t.same(
    altNames('DNS:a.test, email:me@a.test, DNS:"we\\"ird,name", IP Address:10.0.0.1, URI:https://a.test/'),
    { dns: ['a.test', 'we"ird,name'], ip: ['10.0.0.1'] },
    'a quoted value is one entry; email and URI are neither kind',
  )
})
