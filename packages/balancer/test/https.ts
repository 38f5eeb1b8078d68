import { execFile } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { existsSync } from 'node:fs'
import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect as h2connect, constants, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2'
import { createServer as createHttpsServer, request as httpsRequest } from 'node:https'
import type { AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { createBalancer, type Balancer, type BalancerOptions } from '../src/index.js'
import { CertificateStore } from '../src/server/certificate-store.js'
import { issue, makeCa, type TestCa } from './fixtures/certs.js'
import { rapidReset } from './fixtures/h2-raw.js'
import { closedPort, collectAccess, fetchText, startUpstream, type Seen } from './fixtures/servers.js'

interface Started {
  balancer: Balancer
  /** The HTTPS port. */
  port: number
  /** The plain port, when asked for. */
  plain: number | undefined
  ca: TestCa
  logs: string[]
  access: ReturnType<typeof collectAccess>
}

/** A balancer over real TLS on 127.0.0.1, port 0, with a certificate for localhost from a test CA. */
async function startHttps(
  t: Test,
  upstreams: BalancerOptions['upstreams'],
  options: Partial<BalancerOptions> & { plain?: boolean; redirect?: boolean; http2?: boolean; maxStreams?: number } = {},
): Promise<Started> {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['localhost', '127.0.0.1'] })
  const logs: string[] = []
  const access = collectAccess()
  const balancer = createBalancer({ upstreams, log: line => logs.push(line), accessLog: access.log, ...options })
  t.teardown(() => balancer.close())
  const certificates = new CertificateStore([leaf], 'TLSv1.2')
  const { port } = await balancer.listenHttps(0, '127.0.0.1', {
    certificates,
    http2: options.http2 ?? true,
    minVersion: 'TLSv1.2',
    maxStreams: options.maxStreams,
  })
  const plain = options.plain
    ? (await balancer.listen(0, '127.0.0.1', { redirectHttpsTo: options.redirect ? port : undefined })).port
    : undefined
  return { balancer, port, plain, ca, logs, access }
}

const spec = (hostPort: string): { host: string; port: number } => {
  const [host, port] = hostPort.split(':')
  return { host: host as string, port: Number(port) }
}

function h2(t: Test, s: Started): ClientHttp2Session {
  const client = h2connect(`https://localhost:${s.port}`, { ca: s.ca.pem })
  client.on('error', () => {})
  t.teardown(() => client.destroy())
  return client
}

interface Answer {
  status: number
  headers: IncomingHttpHeaders
  body: Buffer
}

async function h2request(client: ClientHttp2Session, headers: OutgoingHttpHeaders = {}, body?: string | Buffer): Promise<Answer> {
  const stream = client.request({ ':path': '/', ...headers }, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  const [head] = (await once(stream, 'response')) as [IncomingHttpHeaders]
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(chunk as Buffer)
  return { status: Number(head[':status']), headers: head, body: Buffer.concat(chunks) }
}

/** An HTTPS/1.1 request trusting the test CA. */
function h1request(
  s: Started,
  options: { method?: string; path?: string; body?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port: s.port,
        ca: s.ca.pem,
        agent: false,
        method: options.method ?? 'GET',
        path: options.path ?? '/',
        headers: options.headers,
      },
      res => {
        const chunks: Buffer[] = []
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => resolve({ status: res.statusCode as number, headers: res.headers, body: Buffer.concat(chunks) }))
      },
    )
    req.on('error', reject)
    req.end(options.body)
  })
}

t.test(
  'HTTPS GET and POST through the balancer: X-Forwarded-Proto https, HSTS, a Secure sticky cookie, tls= in the access log',
  async t => {
    const a = await startUpstream(t, 'a')
    const s = await startHttps(t, [spec(a.spec)], { hsts: 365 * 86_400_000, sticky: { cookie: 'sy', secret: 'k' } })
    const get = await h1request(s, { path: '/get?x=1' })
    t.equal(get.status, 200, 'GET answered')
    t.equal(get.body.toString(), 'hello from a\n', 'by the upstream')
    t.equal(get.headers['strict-transport-security'], 'max-age=31536000', 'HSTS from --hsts')
    t.match(get.headers['set-cookie']?.[0], /^sy=.*; Secure$/, 'the sticky cookie is Secure on HTTPS')
    const post = await h1request(s, { method: 'POST', path: '/post', body: 'payload', headers: { 'content-type': 'text/plain' } })
    t.equal(post.status, 200, 'POST answered')
    const [seenGet, seenPost] = a.seen as [Seen, Seen]
    t.equal(seenGet.headers['x-forwarded-proto'], 'https', 'the upstream is told the client used HTTPS')
    t.equal(seenPost.bytes, 7, 'the body arrived')
    t.match(s.access.entries[0], { httpVersion: '1.1', tls: /^TLSv1\.[23]$/ }, 'the access entry has the TLS version')
    t.ok(s.balancer.listening, 'an HTTPS listener alone counts as listening')
    t.same(
      s.balancer.listenerConnections.map(l => l.listener),
      ['https', 'https'],
      'and its connections are counted per protocol',
    )
  },
)

t.test('h2 by ALPN: no pseudo-header reaches the upstream, Host is set, connection headers never come back', async t => {
  const up = await startUpstream(t, 'up', (_req, res) => {
    res.writeHead(200, { connection: 'keep-alive', 'keep-alive': 'timeout=5', 'x-upstream': 'yes', 'content-type': 'text/plain' })
    res.end('over h2')
  })
  const s = await startHttps(t, [spec(up.spec)])
  const client = h2(t, s)
  const answer = await h2request(client, { ':path': '/h2?q=1', 'x-client': 'c' })
  t.equal(answer.status, 200, 'answered')
  t.equal(answer.body.toString(), 'over h2', 'with the body')
  t.equal(answer.headers.connection, undefined, 'no Connection')
  t.equal(answer.headers['keep-alive'], undefined, 'no Keep-Alive')
  t.equal(answer.headers['x-upstream'], 'yes', 'the rest passes')
  const seen = up.seen[0] as Seen
  t.equal(seen.url, '/h2?q=1', 'the path as sent')
  t.notOk(
    seen.rawHeaders.some((v, i) => i % 2 === 0 && v.startsWith(':')),
    'no pseudo-header upstream',
  )
  t.equal(seen.headers.host, `localhost:${s.port}`, 'Host is the :authority')
  t.equal(seen.headers['x-forwarded-proto'], 'https', 'X-Forwarded-Proto https')
  t.equal(seen.headers['x-client'], 'c', 'client headers pass')
  t.match(s.access.entries[0], { httpVersion: '2.0', tls: 'TLSv1.3' }, 'logged as HTTP/2.0 over TLSv1.3')
  // Read once per connection (the listener's note on the session), not through the stream's socket.
  t.equal(seen.headers['x-forwarded-for'], '127.0.0.1', 'X-Forwarded-For is the client address')
  t.match(s.access.entries[0], { client: '127.0.0.1' }, 'as the log has it')

  const viaCurl = existsSync('/usr/bin/curl')
    ? await new Promise<string>((resolve, reject) =>
        execFile(
          'curl',
          ['-sS', '--http2', '--cacert', s.ca.cert, '-w', ' %{http_version}', `https://localhost:${s.port}/curl`],
          (err, out) => (err ? reject(err) : resolve(out)),
        ),
      )
    : undefined
  if (viaCurl !== undefined) t.equal(viaCurl, 'over h2 2', 'curl --http2 is served over h2')
})

t.test('100 concurrent h2 streams on one connection are spread by the policy', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const s = await startHttps(t, [spec(a.spec), spec(b.spec)])
  const client = h2(t, s)
  const answers = await Promise.all(Array.from({ length: 100 }, (_, i) => h2request(client, { ':path': `/${i}` })))
  t.ok(
    answers.every(r => r.status === 200),
    'all 200',
  )
  t.equal(a.seen.length, 50, 'round-robin: half to a')
  t.equal(b.seen.length, 50, 'half to b')
})

t.test('502, 503 and 504 over h2 are the same short text answers', async t => {
  const dead = await closedPort()
  const s = await startHttps(t, [spec(dead)], { connectTimeout: 1000 })
  const client = h2(t, s)
  const bad = await h2request(client)
  t.equal(bad.status, 502, '502 when every try failed')
  t.match(bad.body.toString(), /^502 Bad Gateway: upstream 127\.0\.0\.1:\d+ refused the connection\n$/, 'with a line naming it')
  const down = await startHttps(t, [{ ...spec(dead), down: true }])
  const none = await h2request(h2(t, down))
  t.equal(none.status, 503, '503 with no upstream to try')
  t.match(none.body.toString(), /^503 Service Unavailable: /, 'with a line')
  const slow = await startUpstream(t, 'slow', () => {})
  const s2 = await startHttps(t, [spec(slow.spec)], { timeout: 200 })
  const late = await h2request(h2(t, s2))
  t.equal(late.status, 504, '504 after the response timeout')
})

t.test("a client's stream reset aborts the upstream request", async t => {
  let aborted: Promise<unknown> = Promise.resolve()
  let arrived: () => void = () => {}
  const came = new Promise<void>(resolve => (arrived = resolve))
  const up = createHttpServer((req: IncomingMessage, res: ServerResponse) => {
    aborted = once(res, 'close')
    arrived()
    req.resume()
  })
  up.listen(0, '127.0.0.1')
  await once(up, 'listening')
  t.teardown(() => {
    up.closeAllConnections()
    up.close()
  })
  const s = await startHttps(t, [{ host: '127.0.0.1', port: (up.address() as AddressInfo).port }])
  const stream = h2(t, s).request({ ':path': '/slow' }, { endStream: true })
  stream.on('error', () => {})
  await came
  stream.close()
  await aborted
  t.pass('the upstream request was closed')
  // Logged once the balancer's side of the stream closes too: bounded by the test's timeout.
  while (s.access.entries.length === 0) await new Promise(resolve => setImmediate(resolve))
  t.equal(s.access.entries[0]?.status, 499, `logged as 499, the client gone (${JSON.stringify(s.access.entries[0])})`)
})

t.test(
  'a response the upstream cuts short is a reset stream over h2, not a whole one, and costs the client no reset allowance',
  async t => {
    // Promises 100 bytes, sends 10, and closes the connection.
    const up = await startUpstream(t, 'cut', (req, res) => {
      if (req.url === '/after') return void res.end('whole')
      res.writeHead(200, { 'content-length': '100' })
      res.write('0123456789', () => res.socket?.destroy())
    })
    // Four streams at once: the reset allowance is eight, refilled at 0.4 a second.
    const s = await startHttps(t, [spec(up.spec)], { maxStreams: 4 })
    const client = h2(t, s)
    for (let i = 0; i < 20; i++) {
      const stream = client.request({ ':path': `/cut/${i}` }, { endStream: true })
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      // Whichever comes first: a truncated body that ends cleanly is the failure this is about.
      const ended = await Promise.race([
        once(stream, 'error').then(([err]) => (err as NodeJS.ErrnoException).code),
        once(stream, 'end').then(() => `a clean end after ${Buffer.concat(chunks).length} bytes`),
      ])
      if (i > 0 && ended === 'ERR_HTTP2_STREAM_ERROR') continue
      t.equal(ended, 'ERR_HTTP2_STREAM_ERROR', 'the client sees a stream error, not the end of a body')
      t.equal(stream.rstCode, constants.NGHTTP2_INTERNAL_ERROR, 'RST_STREAM INTERNAL_ERROR, as nginx sends')
      t.ok(Buffer.concat(chunks).length <= 10, 'after at most the bytes that came')
    }
    t.notOk(client.destroyed || client.closed, 'twenty such resets in a row: the connection is not taken for an attacker')
    const ok = await h2request(client, { ':path': '/after' })
    t.same([ok.status, ok.body.toString()], [200, 'whole'], 'and it serves on')
    t.same(
      s.logs.filter(l => l.includes('rapid reset')),
      [],
      'nothing logged as abuse',
    )
  },
)

t.test('--redirect-https: the plain port answers 308 with the HTTPS Location; ACME challenges are forwarded', async t => {
  const a = await startUpstream(t, 'a')
  const s = await startHttps(t, [spec(a.spec)], { plain: true, redirect: true })
  const r = await fetchText(s.plain as number, { path: '/page?x=1', headers: { host: `localhost:${s.plain}` } })
  t.equal(r.status, 308, '308')
  t.equal(r.headers.location, `https://localhost:${s.port}/page?x=1`, 'same host and path, the HTTPS port')
  const acme = await fetchText(s.plain as number, { path: '/.well-known/acme-challenge/abc', headers: { host: 'example.test' } })
  t.equal(acme.status, 200, 'an ACME challenge is forwarded')
  t.equal((a.seen[0] as Seen).headers['x-forwarded-proto'], 'http', 'over plain HTTP')
  const bad = await fetchText(s.plain as number, { headers: { host: 'a@b' } })
  t.equal(bad.status, 400, 'a Host that is not a host: 400')
  t.same(
    s.balancer.listenerConnections.map(l => `${l.listener} ${l.protocol}`),
    ['http http/1.1', 'https h2', 'https http/1.1'],
    'both listeners counted',
  )
})

t.test('WebSockets over wss://', async t => {
  const up = createHttpServer()
  const { WebSocketServer } = await import('ws')
  const wss = new WebSocketServer({ server: up })
  wss.on('connection', (ws, req) => ws.send(`proto=${req.headers['x-forwarded-proto']}`))
  up.listen(0, '127.0.0.1')
  await once(up, 'listening')
  t.teardown(() => {
    wss.close()
    up.closeAllConnections()
    up.close()
  })
  const s = await startHttps(t, [{ host: '127.0.0.1', port: (up.address() as AddressInfo).port }])
  const ws = new WebSocket(`wss://localhost:${s.port}/ws`, { ca: s.ca.pem })
  const [data] = (await once(ws, 'message')) as [Buffer]
  t.equal(data.toString(), 'proto=https', 'the tunnel is open, and the upstream was told https')
  ws.close()
})

t.test('TLS to an upstream: trusted works, untrusted and another host are 502 with a clear line', async t => {
  const ca = makeCa(t, 'Upstream CA')
  const serve = async (names: string[]): Promise<number> => {
    const leaf = issue(ca, { names })
    const server = createHttpsServer(leaf.pem, (req, res) => res.end(`tls upstream sni=${(req.socket as TLSSocket).servername}`))
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => {
      server.closeAllConnections()
      server.close()
    })
    return (server.address() as AddressInfo).port
  }
  const good = await serve(['127.0.0.1', 'api.test'])
  const trusted = await startHttps(t, [{ host: '127.0.0.1', port: good, tls: {} }], { upstreamCa: ca.pem, health: undefined })
  const ok = await h2request(h2(t, trusted))
  t.equal(ok.status, 200, 'a trusted upstream answers')
  t.equal(ok.body.toString(), 'tls upstream sni=false', 'no SNI to an address')
  const named = await startHttps(t, [{ host: '127.0.0.1', port: good, tls: { servername: 'api.test' } }], { upstreamCa: ca.pem })
  t.equal((await h2request(h2(t, named))).body.toString(), 'tls upstream sni=api.test', 'tls_servername sent and checked')

  const untrusted = await startHttps(t, [{ host: '127.0.0.1', port: good, tls: {} }])
  const refused = await h2request(h2(t, untrusted))
  t.equal(refused.status, 502, 'untrusted: 502')
  t.match(
    refused.body.toString(),
    /^502 Bad Gateway: upstream 127\.0\.0\.1:\d+ could not be reached over TLS: its certificate or handshake failed\n$/,
    'the client is told in words; the code is for the log',
  )
  t.match(
    untrusted.logs,
    [
      /marked down: 1 failure\(s\) in 10s, last: TLS: its certificate is not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE; --upstream-ca names the CA that signed it\)/,
    ],
    'one clear line',
  )

  const other = await serve(['other.test'])
  const wrong = await startHttps(t, [{ host: '127.0.0.1', port: other, tls: {} }], { upstreamCa: ca.pem })
  const mismatch = await h2request(h2(t, wrong))
  t.equal(mismatch.status, 502, 'another host: 502')
  t.match(wrong.logs, [/last: TLS: its certificate names another host: .*\(ERR_TLS_CERT_ALTNAME_INVALID\)/], 'one clear line')
})

t.test('rapid reset through the balancer: the attacker is cut off, a second client is served', async t => {
  const a = await startUpstream(t, 'a')
  const s = await startHttps(t, [spec(a.spec)])
  const attack = await rapidReset(s.port, s.ca.pem, { count: 10_000 })
  t.ok(attack.closed, `the connection was closed after ${attack.opened} streams`)
  t.match(s.logs, [/^h2 connection from 127\.0\.0\.1 closed: \d+ streams reset/], 'logged once')
  t.equal((await h2request(h2(t, s))).status, 200, 'a second client is served')
})

t.test("300 MB up and down over h2 keep their sha256, and the balancer's memory stays bounded", async t => {
  const SIZE = 300 * 1024 * 1024
  const CHUNK = 1024 * 1024
  // A deterministic body: each chunk filled with its index.
  const chunkOf = (i: number): Buffer => Buffer.alloc(CHUNK, i % 251)
  const expected = createHash('sha256')
  for (let i = 0; i < SIZE / CHUNK; i++) expected.update(chunkOf(i))
  const want = expected.digest('hex')
  const up = await startUpstream(t, 'big', (req, res, seen) => {
    res.writeHead(200, { 'x-upload-sha256': seen.sha256, 'x-upload-bytes': String(seen.bytes) })
    if (req.url !== '/download') return void res.end()
    let i = 0
    const write = (): void => {
      while (i < SIZE / CHUNK) if (!res.write(chunkOf(i++))) return void res.once('drain', write)
      res.end()
    }
    write()
  })
  const s = await startHttps(t, [spec(up.spec)], { timeout: 120_000 })
  const client = h2(t, s)
  let peak = process.memoryUsage().rss
  const sample = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 50)
  t.teardown(() => clearInterval(sample))
  const rssBefore = process.memoryUsage().rss

  // Up: streamed with backpressure, never held whole.
  const upload = client.request({ ':method': 'POST', ':path': '/upload' })
  let sent = 0
  const pump = (): void => {
    while (sent < SIZE / CHUNK) if (!upload.write(chunkOf(sent++))) return void upload.once('drain', pump)
    upload.end()
  }
  pump()
  const [upHead] = (await once(upload, 'response')) as [IncomingHttpHeaders]
  upload.resume()
  await once(upload, 'end')
  t.equal(upHead['x-upload-bytes'], String(SIZE), '300 MB arrived upstream')
  t.equal(upHead['x-upload-sha256'], want, 'with the same sha256')

  // Down: read as it comes.
  const download = client.request({ ':path': '/download' }, { endStream: true })
  const got = createHash('sha256')
  let bytes = 0
  download.on('data', (c: Buffer) => {
    bytes += c.length
    got.update(c)
  })
  await once(download, 'end')
  clearInterval(sample)
  t.equal(bytes, SIZE, '300 MB came back')
  t.equal(got.digest('hex'), want, 'with the same sha256')
  // The test, the balancer and the upstream share this process: 300 MB held anywhere would show.
  t.ok(
    peak - rssBefore < 150 * 1024 * 1024,
    `RSS grew by ${((peak - rssBefore) / 1048576).toFixed(0)} MB, well below the 300 MB that went through`,
  )
})

/** An HTTPS upstream with a certificate from `ca` for `names`, answering with its SNI name. */
async function tlsUpstream(
  t: Test,
  ca: TestCa,
  names: string[],
  onRequest?: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<number> {
  const leaf = issue(ca, { names })
  const server = createHttpsServer(leaf.pem, onRequest ?? ((req, res) => res.end(`sni=${(req.socket as TLSSocket).servername}`)))
  const { WebSocketServer } = await import('ws')
  const wss = new WebSocketServer({ server })
  wss.on('connection', ws => ws.send('wss upstream'))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    wss.close()
    server.closeAllConnections()
    server.close()
  })
  return (server.address() as AddressInfo).port
}

t.test('TLS upstreams: WebSockets over TLS to them, active checks over TLS, a reload that changes the TLS settings', async t => {
  const ca = makeCa(t, 'Upstream CA')
  const port = await tlsUpstream(t, ca, ['127.0.0.1', 'api.test'])
  const s = await startHttps(t, [{ host: '127.0.0.1', port, tls: {} }], {
    upstreamCa: ca.pem,
    health: { path: '/healthz', interval: 100, timeout: 1000, healthyThreshold: 1, unhealthyThreshold: 1, status: [200, 399] },
  })
  const ws = new WebSocket(`wss://localhost:${s.port}/ws`, { ca: s.ca.pem })
  const [data] = (await once(ws, 'message')) as [Buffer]
  t.equal(data.toString(), 'wss upstream', 'a WebSocket reaches the TLS upstream over TLS')
  ws.close()
  while (s.balancer.lastCheck(`127.0.0.1:${port}`) === undefined) await new Promise(resolve => setTimeout(resolve, 20))
  t.match(s.balancer.lastCheck(`127.0.0.1:${port}`), { ok: true }, 'the active check passes over TLS')
  s.balancer.reload({ upstreams: [{ host: '127.0.0.1', port, tls: { servername: 'api.test' } }], upstreamCa: ca.pem, log: () => {} })
  t.equal((await h2request(h2(t, s))).body.toString(), 'sni=api.test', 'a reload with tls_servername makes new agents')

  const untrusted = await startHttps(t, [{ host: '127.0.0.1', port, tls: {} }], {
    health: { path: '/healthz', interval: 100, timeout: 1000, healthyThreshold: 1, unhealthyThreshold: 1, status: [200, 399] },
  })
  while (untrusted.balancer.lastCheck(`127.0.0.1:${port}`) === undefined) await new Promise(resolve => setTimeout(resolve, 20))
  t.match(
    untrusted.balancer.lastCheck(`127.0.0.1:${port}`)?.detail,
    /-> TLS: its certificate is not signed by a trusted CA \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/,
    'a failed check says why',
  )
  // Without checks, so that the upgrade is what finds the certificate untrusted.
  const plainly = await startHttps(t, [{ host: '127.0.0.1', port, tls: {} }])
  const refused = new WebSocket(`wss://localhost:${plainly.port}/ws`, { ca: plainly.ca.pem })
  refused.on('error', () => {})
  const [, res] = (await once(refused, 'unexpected-response')) as [unknown, IncomingMessage]
  t.equal(res.statusCode, 502, 'a WebSocket to an untrusted upstream is a 502')
  t.match(plainly.logs, [/marked down: .*last: TLS: its certificate is not signed by a trusted CA/], 'with the same clear line')
})

t.test('a TLS upstream closing a kept-alive connection as it is reused: the request is resent on a new one', async t => {
  const ca = makeCa(t, 'Upstream CA')
  let connections = 0
  const leaf = issue(ca, { names: ['127.0.0.1'] })
  const { createServer: createTlsServer } = await import('node:tls')
  // Answers the first request on a connection, then closes when the next arrives on it.
  const racy = createTlsServer(leaf.pem, socket => {
    connections++
    let received = ''
    socket.on('data', (d: Buffer) => {
      received += d.toString()
      if (received.split('\r\n\r\n').length - 1 === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nracy!')
      else socket.destroy()
    })
  })
  racy.listen(0, '127.0.0.1')
  await once(racy, 'listening')
  t.teardown(() => racy.close())
  const s = await startHttps(t, [{ host: '127.0.0.1', port: (racy.address() as AddressInfo).port, tls: {} }], { upstreamCa: ca.pem })
  const client = h2(t, s)
  const answers = [await h2request(client), await h2request(client)]
  t.same(
    answers.map(a => [a.status, a.body.toString()]),
    [
      [200, 'racy!'],
      [200, 'racy!'],
    ],
    'both answered by it',
  )
  t.equal(connections, 2, 'the second on a new connection')
  t.same(s.logs, [], 'not held against it')
})

t.test('--redirect-https for upgrades: 308 on the raw socket, ACME forwarded, a bad Host 400', async t => {
  const a = await startUpstream(t, 'a')
  const s = await startHttps(t, [spec(a.spec)], { plain: true, redirect: true })
  const raw = async (path: string, host: string): Promise<string> => {
    const { connect } = await import('node:net')
    const socket = connect(s.plain as number, '127.0.0.1')
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    )
    let text = ''
    socket.on('data', (c: Buffer) => (text += c))
    await once(socket, 'close')
    return text
  }
  t.match(
    await raw('/ws', 'localhost'),
    new RegExp(`^HTTP/1\\.1 308 Permanent Redirect\\r\\nLocation: https://localhost:${s.port}/ws\\r\\n`),
    '308 with the Location',
  )
  t.match(await raw('/ws', 'a@b'), /^HTTP\/1\.1 400 Bad Request\r\n/, 'a bad Host: 400')
  t.match(
    await raw('/.well-known/acme-challenge/x', 'localhost'),
    /^HTTP\/1\.1 (502|501|400|426|404|200)/,
    'an ACME path is handed to the WebSocket path',
  )
})

t.test('h2 requests the balancer answers itself: CONNECT 405, a Host that is not the :authority 400, counted and logged', async t => {
  const a = await startUpstream(t, 'a')
  const s = await startHttps(t, [spec(a.spec)])
  const client = h2(t, s)
  const connect = client.request({ ':method': 'CONNECT', ':authority': 'a.test:443' })
  connect.on('error', () => {})
  const [head] = (await once(connect, 'response')) as [IncomingHttpHeaders]
  let body = ''
  connect.setEncoding('utf8')
  connect.on('data', (c: string) => (body += c))
  await once(connect, 'end')
  t.equal(head[':status'], 405, 'CONNECT: 405')
  t.match(body, /^405 Method Not Allowed: CONNECT is not supported/, 'with a line')
  const host = await h2request(client, { ':authority': `localhost:${s.port}`, host: 'other.test' })
  t.equal(host.status, 400, 'Host against :authority: 400')
  t.equal(host.body.toString(), '400 Bad Request: the Host header names another host than :authority\n', 'with a line')
  t.equal(host.headers.connection, undefined, 'and no Connection header on h2, where it is forbidden')
  t.equal(a.seen.length, 0, 'neither reached the upstream')
  t.same(
    s.access.entries.map(e => [e.method, e.status, e.upstream]),
    [
      ['CONNECT', 405, undefined],
      ['GET', 400, undefined],
    ],
    "both logged as the balancer's own answers",
  )
})

t.test('the edge cache answers over HTTPS: a MISS on h2, then HITs on h2 and on HTTPS/1.1, one upstream request', async t => {
  let n = 0
  const a = await startUpstream(t, 'a', (_req, res) => {
    n++
    // Connection-specific headers the h2 side must drop from a stored response too.
    res.writeHead(200, { 'cache-control': 'max-age=60', connection: 'keep-alive', 'keep-alive': 'timeout=5' })
    res.end(`body ${n}\n`)
  })
  const s = await startHttps(t, [spec(a.spec)], { cache: { maxBytes: 1024 * 1024 } })
  const client = h2(t, s)
  const miss = await h2request(client, { ':path': '/page' })
  const hit = await h2request(client, { ':path': '/page' })
  // The key holds the Host: the same one as the h2 client's :authority.
  const hitH1 = await h1request(s, { path: '/page', headers: { host: `localhost:${s.port}` } })
  t.same(
    [miss, hit, hitH1].map(r => [r.status, r.headers['x-cache-status'], r.body.toString()]),
    [
      [200, 'MISS', 'body 1\n'],
      [200, 'HIT', 'body 1\n'],
      [200, 'HIT', 'body 1\n'],
    ],
    'MISS, then the stored body on both protocols',
  )
  t.equal(hit.headers['age'], '0', 'the h2 HIT carries Age')
  t.equal(hit.headers['keep-alive'], undefined, 'no connection-specific header on h2')
  t.equal(a.seen.length, 1, 'the upstream saw one request')
})
