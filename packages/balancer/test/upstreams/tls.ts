import { once } from 'node:events'
import { writeFileSync } from 'node:fs'
import { createServer as createHttpServer, type OutgoingHttpHeaders } from 'node:http'
import { createServer, request, type Agent } from 'node:https'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { localCertificate } from '../../src/server/self-signed.js'
import { describeTlsFailure, readUpstreamCa, tlsAgents } from '../../src/upstreams/tls.js'
import { issue, makeCa, type Issued } from '../fixtures/certs.js'
import { tempDir } from '../fixtures/temp.js'

/** An HTTPS upstream on 127.0.0.1, port 0, answering with the SNI name it was reached by. */
async function httpsUpstream(t: Test, pair: { pem: { cert: Buffer; key: Buffer } }): Promise<number> {
  const server = createServer(pair.pem, (req, res) => res.end(`sni=${(req.socket as TLSSocket).servername}`))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

interface Result {
  body?: string
  reused?: boolean
  err?: Error
}

/** GET / from `host:port` through `agent`, as http-proxy sends a request (host and port, agent, headers). */
function fetch(agent: Agent, host: string, port: number, headers: OutgoingHttpHeaders = {}): Promise<Result> {
  return new Promise(resolve => {
    const req = request({ host, port, path: '/', agent, headers }, res => {
      let body = ''
      res.on('data', (c: Buffer) => (body += c))
      res.on('end', () => resolve({ body, reused: req.reusedSocket }))
    })
    req.on('error', err => resolve({ err }))
    req.end()
  })
}

t.test('readUpstreamCa reads PEM, and names the file when it cannot', async t => {
  const ca = makeCa(t)
  t.same(readUpstreamCa(ca.cert), ca.pem, 'the certificates as read')
  const dir = tempDir(t, 'tls')
  writeFileSync(join(dir, 'empty.pem'), 'nothing here\n')
  t.throws(
    () => readUpstreamCa(join(dir, 'missing.pem')),
    { name: 'ConfigError', message: /^upstream-ca \S+missing\.pem: cannot be read \(ENOENT\)$/ },
    'missing',
  )
  t.throws(
    () => readUpstreamCa(join(dir, 'empty.pem')),
    { name: 'ConfigError', message: /^upstream-ca \S+empty\.pem: holds no PEM certificate/ },
    'no certificate',
  )
})

t.test("a trusted upstream: verified by address or name, kept alive, SNI the upstream's and never the client's Host", async t => {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['localhost', '127.0.0.1', 'api.test'] })
  const port = await httpsUpstream(t, leaf)
  const byAddress = tlsAgents('127.0.0.1', {}, ca.pem, 4000)
  t.teardown(() => byAddress.agent.destroy())
  const first = await fetch(byAddress.agent, '127.0.0.1', port, { host: 'client.example' })
  t.equal(first.body, 'sni=false', "an address: no SNI, checked against the IP addresses, not the client's Host")
  t.equal((await fetch(byAddress.agent, '127.0.0.1', port)).reused, true, 'the next request reuses the connection')
  const fresh = await fetch(byAddress.fresh, '127.0.0.1', port)
  t.same([fresh.body, fresh.reused], ['sni=false', false], 'the fresh agent opens a new one')

  const byName = tlsAgents('localhost', {}, ca.pem, 4000)
  t.teardown(() => byName.agent.destroy())
  t.equal((await fetch(byName.agent, 'localhost', port, { host: 'client.example' })).body, 'sni=localhost', 'a name: sent as SNI')

  const named = tlsAgents('127.0.0.1', { servername: 'api.test' }, ca.pem, 4000)
  t.teardown(() => named.agent.destroy())
  t.equal((await fetch(named.agent, '127.0.0.1', port)).body, 'sni=api.test', 'tls_servername: sent as SNI and checked')
})

t.test('each failure reads as what to fix', async t => {
  const ca = makeCa(t)
  const other = makeCa(t, 'Another CA')
  const cases: [string, Issued | 'plain' | 'self-signed', Buffer | undefined, RegExp][] = [
    [
      'a CA not trusted',
      issue(other, { names: ['127.0.0.1'] }),
      ca.pem,
      /^TLS: its certificate is not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE; --upstream-ca names the CA that signed it\)$/,
    ],
    [
      "Node's default roots, for a private CA",
      issue(ca, { names: ['127.0.0.1'] }),
      undefined,
      /^TLS: its certificate is not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    ],
    [
      'another host',
      issue(ca, { names: ['other.test'] }),
      ca.pem,
      /^TLS: its certificate names another host: IP: 127\.0\.0\.1 is not in the cert's list: *\(ERR_TLS_CERT_ALTNAME_INVALID\)$/,
    ],
    [
      'expired',
      issue(ca, { names: ['127.0.0.1'], from: Date.now() - 2 * 86_400_000, to: Date.now() - 86_400_000 }),
      ca.pem,
      /^TLS: its certificate has expired \(CERT_HAS_EXPIRED\)$/,
    ],
    [
      'self-signed',
      'self-signed',
      ca.pem,
      /^TLS: its certificate is self-signed and not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT; --upstream-ca/,
    ],
    ['plain HTTP', 'plain', ca.pem, /^TLS: the handshake failed \(EPROTO: wrong version number; it does not speak TLS on that port\)$/],
  ]
  for (const [what, upstream, trust, message] of cases) {
    let port: number
    if (upstream === 'plain') {
      const server = createHttpServer((_req, res) => res.end('plain'))
      server.listen(0, '127.0.0.1')
      await once(server, 'listening')
      t.teardown(() => server.close())
      port = (server.address() as AddressInfo).port
    } else if (upstream === 'self-signed') {
      const local = localCertificate(tempDir(t, 'tls'))
      port = await httpsUpstream(t, { pem: local.certificate.pem })
    } else port = await httpsUpstream(t, upstream)
    const { agent } = tlsAgents('127.0.0.1', {}, trust, 4000)
    const r = await fetch(agent, '127.0.0.1', port)
    agent.destroy()
    t.match(r.err === undefined ? `answered ${r.body}` : describeTlsFailure(r.err), message, what)
  }
  t.equal(describeTlsFailure(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })), undefined, 'not a TLS failure: nothing to add')
  t.equal(
    describeTlsFailure(Object.assign(new Error('alert'), { code: 'EPROTO' })),
    'TLS: the handshake failed (EPROTO: alert)',
    'an EPROTO without an OpenSSL reason keeps its message',
  )
})
