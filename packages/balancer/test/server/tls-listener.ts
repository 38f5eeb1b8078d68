import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { copyFileSync, existsSync } from 'node:fs'
import { request as httpsRequest, type Agent } from 'node:https'
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { connect as netConnect } from 'node:net'
import { join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import { CertificateStore } from '../../src/server/certificate-store.js'
import type { H2Request, H2Response } from '../../src/server/h2-messages.js'
import { TlsListener, type TlsListenerOptions } from '../../src/server/tls-listener.js'
import { issue, makeCa, type TestCa } from '../fixtures/certs.js'
import { rapidReset } from '../fixtures/h2-raw.js'
import { tempDir } from '../fixtures/temp.js'

interface Started {
  listener: TlsListener
  port: number
  ca: TestCa
  logs: string[]
  /** What each handler saw: `h1 GET /x` or `h2 GET /x host`. */
  seen: string[]
  refused: string[]
  /** Requests to /hold wait here until called. */
  held: (() => void)[]
  dir: string
}

/**
 * A TlsListener on 127.0.0.1, port 0, with a certificate for localhost and 127.0.0.1 from a test
 * CA (copied to fixed names in `dir`, so that a renewal can overwrite them), and handlers that
 * record what they got.
 */
async function start(t: Test, options: Partial<TlsListenerOptions> = {}): Promise<Started> {
  const ca = makeCa(t)
  const dir = tempDir(t, 'tls')
  const leaf = issue(ca, { names: ['localhost', '127.0.0.1'] })
  copyFileSync(leaf.cert, join(dir, 'site.crt'))
  copyFileSync(leaf.key, join(dir, 'site.key'))
  const files = { cert: join(dir, 'site.crt'), key: join(dir, 'site.key') }
  const seen: string[] = []
  const refused: string[] = []
  const logs: string[] = []
  const held: (() => void)[] = []
  const answer = (url: string, end: () => void): void => {
    if (url === '/hold') held.push(end)
    else end()
  }
  const listener = new TlsListener(
    {
      setupHttp1: server => {
        server.on('request', (req, res) => {
          seen.push(`h1 ${req.method} ${req.url}`)
          answer(req.url as string, () => res.end(`h1 ${(req.socket as TLSSocket).alpnProtocol}`))
        })
        server.on('upgrade', (req, socket) => {
          seen.push(`upgrade ${req.url}`)
          socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n')
        })
      },
      request: (req: H2Request, res: H2Response) => {
        seen.push(`h2 ${req.method} ${req.url} ${req.headers.host}`)
        answer(req.url, () => res.end('h2'))
      },
      refuse: (_req, res, status, message) => {
        refused.push(`${status} ${message}`)
        res.writeHead(status, { 'content-type': 'text/plain' })
        res.end(`${message}\n`)
      },
      log: line => logs.push(line),
    },
    {
      certificates: new CertificateStore([files], options.minVersion ?? 'TLSv1.2'),
      http2: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: 10_000,
      h2: { maxStreams: 128, firstRequestTimeout: 10_000, idleTimeout: 10_000 },
      maxHeaderListSize: 16 * 1024,
      ...options,
    },
  )
  listener.listen(0, '127.0.0.1')
  await once(listener.https, 'listening')
  t.teardown(() => {
    listener.closeAll()
    return listener.close()
  })
  return { listener, port: listener.address().port, ca, logs, seen, refused, held, dir }
}

/** An h2 client trusting the test CA. */
function h2(t: Test, s: Started, host = 'localhost'): ClientHttp2Session {
  const client = h2connect(`https://${host}:${s.port}`, { ca: s.ca.pem })
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  return client
}

async function h2get(
  client: ClientHttp2Session,
  headers: OutgoingHttpHeaders = {},
): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
  const connect = headers[':method'] === 'CONNECT'
  const stream = client.request(connect ? headers : { ':path': '/', ...headers }, { endStream: !connect })
  const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders]
  let body = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream) body += chunk
  return { status: Number(head[':status']), body, headers: head }
}

/** An HTTPS/1.1 GET trusting the test CA: status, body and the certificate served. */
function h1get(
  s: Started,
  options: { path?: string; servername?: string; agent?: Agent | false } = {},
): Promise<{ status: number; body: string; fingerprint: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port: s.port,
        path: options.path ?? '/',
        ca: s.ca.pem,
        servername: options.servername,
        agent: options.agent ?? false,
      },
      res => {
        let body = ''
        res.on('data', (c: Buffer) => (body += c))
        res.on('end', () =>
          resolve({
            status: res.statusCode as number,
            body,
            fingerprint: (res.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256,
          }),
        )
      },
    )
    req.on('error', reject)
    req.end()
  })
}

/** `curl` with `args`, when curl is installed: its stdout, or undefined without curl. */
function curl(args: string[]): Promise<string | undefined> {
  if (!['/usr/bin/curl', '/bin/curl', '/usr/local/bin/curl'].some(existsSync)) return Promise.resolve(undefined)
  return new Promise((resolve, reject) => execFile('curl', ['-sS', ...args], (err, stdout) => (err ? reject(err) : resolve(stdout))))
}

t.test('ALPN: h2 to the HTTP/2 handlers, HTTP/1.1 to the https.Server, counted per protocol', async t => {
  const s = await start(t)
  const closed: Promise<unknown>[] = []
  s.listener.on('connection', (socket: TLSSocket) => closed.push(once(socket, 'close')))
  const client = h2(t, s)
  const answer = await h2get(client, { ':path': '/two' })
  t.same([answer.status, answer.body], [200, 'h2'], 'h2 is answered by the request handler')
  t.match(s.seen, [/^h2 GET \/two localhost:\d+$/], 'as an HTTP/1.1-shaped request with a Host')
  // Node's https client offers no ALPN: HTTP/1.1.
  t.same(
    await h1get(s, { path: '/one' }).then(r => [r.status, r.body]),
    [200, 'h1 false'],
    'an HTTP/1.1 client is answered by the https.Server',
  )
  t.same(s.listener.open, { h2: 1, 'http/1.1': 1 }, 'open: one of each')
  await closed[1]
  t.same(s.listener.open, { h2: 1, 'http/1.1': 0 }, 'the HTTP/1.1 one (no keep-alive) closes')
  t.same(s.listener.total, { h2: 1, 'http/1.1': 1 }, 'accepted: one of each')

  const viaCurl = await curl(['--http2', '--cacert', s.ca.cert, '-w', ' %{http_version}', `https://localhost:${s.port}/curl`])
  if (viaCurl !== undefined) t.equal(viaCurl, 'h2 2', 'curl --http2 negotiates h2')
  const viaCurl1 = await curl(['--http1.1', '--cacert', s.ca.cert, '-w', ' %{http_version}', `https://localhost:${s.port}/curl1`])
  if (viaCurl1 !== undefined) t.equal(viaCurl1, 'h1 http/1.1 1.1', 'curl --http1.1 gets HTTP/1.1')
})

t.test('a TLS client without ALPN speaks HTTP/1.1; with --no-http2, h2 is not offered', async t => {
  const s = await start(t, { http2: false })
  const socket = tlsConnect({ port: s.port, host: '127.0.0.1', ca: s.ca.pem, servername: 'localhost', ALPNProtocols: ['h2', 'http/1.1'] })
  await once(socket, 'secureConnect')
  t.equal(socket.alpnProtocol, 'http/1.1', 'h2 not offered: http/1.1 chosen')
  socket.end('GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  let text = ''
  socket.on('data', (c: Buffer) => (text += c))
  await once(socket, 'end')
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/, 'and served')
  const bare = tlsConnect({ port: s.port, host: '127.0.0.1', ca: s.ca.pem, servername: 'localhost' })
  await once(bare, 'secureConnect')
  t.equal(bare.alpnProtocol, false, 'no ALPN at all')
  bare.end('GET /bare HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n')
  bare.resume()
  await once(bare, 'end')
  t.same(s.seen, ['h1 GET /plain', 'h1 GET /bare'], 'both reached the HTTP/1.1 handler')
})

t.test('the balancer answers h2 CONNECT (405) and a Host that is not the :authority (400) itself', async t => {
  const s = await start(t)
  const client = h2(t, s)
  const connect = await h2get(client, { ':method': 'CONNECT', ':authority': 'a.test:443' })
  t.equal(connect.status, 405, 'CONNECT: 405')
  t.match(connect.body, /^405 Method Not Allowed: CONNECT is not supported/, 'with a text body')
  const host = await h2get(client, { ':authority': `localhost:${s.port}`, host: 'other.test' })
  t.equal(host.status, 400, 'Host against :authority: 400')
  t.same(
    s.refused.map(r => r.slice(0, 3)),
    ['405', '400'],
    'both went to refuse()',
  )
  t.same(s.seen, [], 'neither to the forward path')
})

t.test('h2 Expect: 100-continue is answered before the handler sees the request; any other expectation gets 417', async t => {
  const s = await start(t)
  const client = h2(t, s)
  const stream = client.request({ ':method': 'POST', ':path': '/expect', expect: '100-continue' }, { endStream: false })
  // The client holds its body until the 100 (Node's client emits 'continue' for it).
  await once(stream, 'continue')
  stream.end('the body')
  const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders]
  stream.resume()
  await once(stream, 'end')
  t.equal(head[':status'], 200, 'then the answer')
  t.match(s.seen, [/^h2 POST \/expect /], 'the handler got it')
  const other = await h2get(client, { ':path': '/other', expect: 'something-else' })
  t.equal(other.status, 417, 'another expectation: 417')
  t.match(other.body, /^417 Expectation Failed/, 'with a text body')
  t.same(
    s.refused.map(r => r.slice(0, 3)),
    ['417'],
    'through refuse()',
  )
  t.equal(s.seen.length, 1, 'not to the forward path')
})

t.test('SNI picks between two certificates by name', async t => {
  const s = await start(t)
  const other = issue(s.ca, { names: ['other.test'] })
  const store = new CertificateStore([{ cert: join(s.dir, 'site.crt'), key: join(s.dir, 'site.key') }, other], 'TLSv1.2')
  const two = new TlsListener(
    {
      setupHttp1: server => server.on('request', (_req, res) => res.end('ok')),
      request: (_req, res) => res.end(),
      refuse: (_req, res) => res.end(),
      log: () => {},
    },
    {
      certificates: store,
      http2: true,
      minVersion: 'TLSv1.2',
      handshakeTimeout: 10_000,
      h2: { maxStreams: 128, firstRequestTimeout: 10_000, idleTimeout: 10_000 },
      maxHeaderListSize: 16384,
    },
  )
  two.listen(0, '127.0.0.1')
  await once(two.https, 'listening')
  t.teardown(() => two.close())
  const at = { ...s, port: two.address().port }
  t.equal((await h1get(at, { servername: 'other.test' })).fingerprint, other.fingerprint, 'other.test gets its certificate')
  t.equal((await h1get(at, { servername: 'localhost' })).fingerprint, store.default.fingerprint, 'localhost gets the first')
})

t.test('reloadCertificates: a new handshake sees the new certificate; a request in flight completes on the old', async t => {
  const s = await start(t)
  const client = h2(t, s)
  await once(client, 'connect')
  const oldPrint = (client.socket as TLSSocket).getPeerX509Certificate()?.fingerprint256
  const inFlight = h2get(client, { ':path': '/hold' })
  while (s.held.length === 0) await new Promise(resolve => setImmediate(resolve))

  const renewed = issue(s.ca, { names: ['localhost', '127.0.0.1'] })
  copyFileSync(renewed.cert, join(s.dir, 'site.crt'))
  copyFileSync(renewed.key, join(s.dir, 'site.key'))
  const r = s.listener.reloadCertificates()
  t.ok(r.ok, 'reloaded')
  t.match(r.line, /^certificates reloaded: \S+site\.crt now /, 'one line')
  t.equal((await h1get(s)).fingerprint, renewed.fingerprint, 'a new handshake without SNI: the new default certificate')
  t.equal((await h1get(s, { servername: 'localhost' })).fingerprint, renewed.fingerprint, 'and with SNI')
  s.held[0]?.()
  t.same((await inFlight).status, 200, 'the request in flight across the reload completed')
  t.notOk(client.closed, 'on its connection, still open')
  t.not(oldPrint, renewed.fingerprint, 'which had the old certificate')
})

t.test('--tls-min-version TLSv1.3 refuses a TLS 1.2 client', async t => {
  const s = await start(t, { minVersion: 'TLSv1.3' })
  const old = tlsConnect({ port: s.port, host: '127.0.0.1', ca: s.ca.pem, servername: 'localhost', maxVersion: 'TLSv1.2' })
  const [err] = (await once(old, 'error')) as [NodeJS.ErrnoException]
  t.match(err.code, /^ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION$|^ERR_SSL_UNSUPPORTED_PROTOCOL$|^EPROTO$/, `refused (${err.code})`)
  const ok = tlsConnect({ port: s.port, host: '127.0.0.1', ca: s.ca.pem, servername: 'localhost' })
  await once(ok, 'secureConnect')
  t.equal(ok.getProtocol(), 'TLSv1.3', 'a TLS 1.3 client gets in')
  ok.destroy()
})

t.test('a client that never finishes its handshake is cut at the handshake timeout', async t => {
  const s = await start(t, { handshakeTimeout: 200 })
  const socket = netConnect(s.port, '127.0.0.1')
  socket.on('error', () => {})
  await once(socket, 'connect')
  socket.resume()
  await once(socket, 'close')
  t.pass('closed by the server')
})

t.test("an upgrade over TLS reaches the https.Server's upgrade handler (wss://)", async t => {
  const s = await start(t)
  const socket = tlsConnect({ port: s.port, host: '127.0.0.1', ca: s.ca.pem, servername: 'localhost', ALPNProtocols: ['http/1.1'] })
  await once(socket, 'secureConnect')
  socket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n')
  let text = ''
  socket.on('data', (c: Buffer) => (text += c))
  await once(socket, 'end')
  t.match(text, /^HTTP\/1\.1 101 Switching Protocols/, '101')
  t.same(s.seen, ['upgrade /ws'], 'through the upgrade event')
})

t.test('rapid reset through the listener is logged once, and others are served', async t => {
  const s = await start(t)
  const attack = await rapidReset(s.port, s.ca.pem)
  t.ok(attack.closed, "the attacker's connection was closed")
  t.match(
    s.logs,
    [/^h2 connection from 127\.0\.0\.1 closed: \d+ streams reset within the allowance \(rapid reset, CVE-2023-44487\)$/],
    'one line',
  )
  t.equal((await h2get(h2(t, s))).status, 200, 'a second client is served')
})

t.test('close(): h2 gets GOAWAY and finishes its streams; idle HTTP/1.1 closes; closeAll cuts the rest', async t => {
  const s = await start(t)
  const client = h2(t, s)
  const inFlight = h2get(client, { ':path': '/hold' })
  while (s.held.length === 0) await new Promise(resolve => setImmediate(resolve))
  const goaway = once(client, 'goaway')
  const closed = s.listener.close()
  const [code] = (await goaway) as [number]
  t.equal(code, constants.NGHTTP2_NO_ERROR, 'GOAWAY NO_ERROR')
  s.held[0]?.()
  t.equal((await inFlight).status, 200, 'the stream in flight completed')
  await closed
  t.same(s.listener.open, { h2: 0, 'http/1.1': 0 }, 'nothing open')

  const cut = await start(t)
  const stuck = h2(t, cut)
  const stream = stuck.request({ ':path': '/hold' }, { endStream: true })
  stream.on('error', () => {})
  const pending = new Promise(resolve => stream.on('close', () => resolve(stream.sentHeaders === undefined ? 'never sent' : 'closed')))
  while (cut.held.length === 0) await new Promise(resolve => setImmediate(resolve))
  const keptAlive = h1get(cut, { path: '/hold' }).catch((err: NodeJS.ErrnoException) => err.code)
  while (cut.held.length < 2) await new Promise(resolve => setImmediate(resolve))
  const done = cut.listener.close()
  cut.listener.closeAll()
  await done
  t.equal(await pending, 'closed', 'the held h2 request was cut')
  t.equal(await keptAlive, 'ECONNRESET', 'the held HTTP/1.1 request was cut')
})
