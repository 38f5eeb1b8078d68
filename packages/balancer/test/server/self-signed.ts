import { once } from 'node:events'
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { get, createServer } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import t from 'tap'
import { LOCAL_DAYS, localCertificate, trustAdvice } from '../../src/server/self-signed.js'
import { tempDir } from '../fixtures/temp.js'

const DAY = 86_400_000

/** GETs / over HTTPS trusting only `ca`: the body, or the error's code. */
async function fetchTrusting(port: number, host: string, ca: Buffer | undefined): Promise<string> {
  return new Promise(resolve => {
    get({ host, port, path: '/', ca }, res => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve(body))
    }).on('error', (err: NodeJS.ErrnoException) => resolve(String(err.code)))
  })
}

t.test('made once for localhost, 127.0.0.1 and ::1, trusted as itself, then reused', async t => {
  const dir = join(tempDir(t, 'tls'), 'tls')
  const made = localCertificate(dir)
  t.ok(made.created, 'made')
  t.same(
    [made.certificate.names, made.certificate.addresses],
    [['localhost'], ['127.0.0.1', '0:0:0:0:0:0:0:1']],
    'for the three local names',
  )
  const days = (made.certificate.validTo.getTime() - Date.now()) / DAY
  t.ok(days > LOCAL_DAYS - 1 && days <= LOCAL_DAYS, `valid for ${LOCAL_DAYS} days`)
  t.equal(statSync(made.key).mode & 0o777, 0o600, "the key is its owner's only")
  t.equal(statSync(dir).mode & 0o777, 0o700, 'so is the folder')

  const server = createServer({ cert: readFileSync(made.cert), key: readFileSync(made.key) }, (_req, res) => res.end('trusted'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as AddressInfo
  const ca = readFileSync(made.cert)
  t.equal(await fetchTrusting(port, 'localhost', ca), 'trusted', 'a client trusting the certificate reaches localhost')
  t.equal(await fetchTrusting(port, '127.0.0.1', ca), 'trusted', 'and 127.0.0.1')
  t.equal(await fetchTrusting(port, 'localhost', undefined), 'DEPTH_ZERO_SELF_SIGNED_CERT', 'and one with only the system store is refused')

  const again = localCertificate(dir)
  t.notOk(again.created, 'the second start reuses it')
  t.equal(again.certificate.fingerprint, made.certificate.fingerprint, 'the same certificate')
  const advice = trustAdvice(again, 'https://localhost:8443/')
  t.equal(advice.length, 3, 'three lines of advice')
  t.match(advice[0], new RegExp(`^using ${made.cert}, SHA-256 ${made.certificate.fingerprint}, valid until \\d{4}-`), 'the fingerprint')
  t.match(advice[1], `curl --cacert ${made.cert} https://localhost:8443/`, 'how curl trusts it')
  t.match(trustAdvice(made, 'x')[0], /^made /, 'made, the first time')
})

t.test('made anew when near its end or unreadable', async t => {
  const dir = tempDir(t, 'tls')
  const first = localCertificate(dir)
  const late = localCertificate(dir, { now: first.certificate.validTo.getTime() - 10 * DAY })
  t.ok(late.created, 'ten days before its end: made anew')
  t.not(late.certificate.fingerprint, first.certificate.fingerprint, 'a new certificate')
  writeFileSync(late.key, 'broken')
  t.ok(localCertificate(dir).created, 'a broken key: made anew')
})

t.test('each failure is one line', async t => {
  const dir = tempDir(t, 'tls')
  t.throws(
    () => localCertificate(dir, { openssl: join(dir, 'no-such-openssl') }),
    {
      name: 'ConfigError',
      message:
        /^https: \S+no-such-openssl not found; it makes the local certificate \(apt-get install openssl\), or give --tls-cert and --tls-key$/,
    },
    'no openssl',
  )
  writeFileSync(join(dir, 'not-executable'), '')
  t.throws(
    () => localCertificate(dir, { openssl: join(dir, 'not-executable') }),
    { name: 'ConfigError', message: /^https: \S+not-executable spawnSync \S+ EACCES;/ },
    'an openssl that cannot run',
  )
  t.throws(
    () => localCertificate(dir, { openssl: 'false' }),
    { name: 'ConfigError', message: /^https: false could not make the local certificate in \S+ \(status 1: no message\)$/ },
    'an openssl that fails silently',
  )
  // A directory where the key should go: openssl cannot write it.
  const blocked = join(dir, 'blocked')
  mkdirSync(join(blocked, 'localhost.key'), { recursive: true })
  t.throws(
    () => localCertificate(blocked),
    { name: 'ConfigError', message: /^https: openssl could not make the local certificate in \S+blocked \(status 1: .+\)$/ },
    'openssl fails',
  )
  writeFileSync(join(dir, 'a-file'), '')
  t.throws(
    () => localCertificate(join(dir, 'a-file', 'tls')),
    { name: 'ConfigError', message: /^https: cannot make \S+ for the local certificate \(ENOTDIR\)$/ },
    'a folder that cannot be made',
  )
})
