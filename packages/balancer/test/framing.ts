// Regressions for the HTTP framing bugs adversarial testing found (issue 11), with raw bytes on
// both sides: what the client gets, and what reached the upstream, how many requests, and with
// which framing. Each test failed on the code before its fix.
import { once } from 'node:events'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import { connect, type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { fetchText, rawExchange, startBalancer, startRawUpstream } from './fixtures/servers.js'
import { run } from './fixtures/cli.js'

/** What a Node upstream parsed: one entry per request it saw, and on which connection. */
interface Parsed {
  method: string
  url: string
  headers: IncomingHttpHeaders
  body: string
  connection: number
}

/**
 * A node:http upstream (llhttp, the strict parser a Node app has) that records every request
 * it parses. `answer` may hold a response back: it gets the request and a function to send.
 */
async function recordingUpstream(t: Test, answer?: (p: Parsed, send: () => void) => void) {
  const seen: Parsed[] = []
  let connections = 0
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('latin1')
    req.on('data', (d: string) => (body += d))
    req.on('end', () => {
      const p = {
        method: req.method as string,
        url: req.url as string,
        headers: req.headers,
        body,
        connection: (req.socket as Socket & { n: number }).n,
      }
      seen.push(p)
      const send = () => res.end(`answer to ${p.method} ${p.url}\n`)
      if (answer === undefined) send()
      else answer(p, send)
    })
  })
  server.on('connection', socket => ((socket as Socket & { n: number }).n = ++connections))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    server.closeAllConnections()
    server.close()
  })
  return { spec: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server }
}

/** A raw client: sends bytes when told, and collects what comes back until the connection closes. */
function rawClient(port: number) {
  const socket = connect(port, '127.0.0.1')
  let received = ''
  const waiters: [RegExp, () => void][] = []
  socket.setEncoding('latin1')
  socket.on('error', () => {})
  socket.on('data', (d: string) => {
    received += d
    for (const [re, resolve] of waiters) if (re.test(received)) resolve()
  })
  const closed = once(socket, 'close').then(() => received)
  return {
    socket,
    closed,
    get received() {
      return received
    },
    /** Resolves once what came back matches `re`. */
    until: (re: RegExp) => (re.test(received) ? Promise.resolve() : new Promise<void>(resolve => waiters.push([re, resolve]))),
  }
}

const SMUGGLED = 'GET /admin HTTP/1.1\r\nHost: internal\r\n\r\n'

t.test('bug 1: Connection cannot remove Content-Length, Transfer-Encoding or Host: no smuggled request', async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  for (const method of ['GET', 'OPTIONS', 'DELETE', 'HEAD', 'TRACE', 'POST', 'PUT']) {
    up.seen.length = 0
    const raw = `${method} / HTTP/1.1\r\nHost: x\r\nConnection: content-length\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`
    const reply = await rawExchange(port, `${raw}GET /done HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.same(
      up.seen.map(p => `${p.method} ${p.url}`),
      [`${method} /`, 'GET /done'],
      `${method}: the upstream saw the client's two requests, and no /admin`,
    )
    const first = up.seen[0] as Parsed
    t.equal(first.headers['content-length'], String(SMUGGLED.length), `${method}: the body went with its Content-Length`)
    t.equal(first.headers['transfer-encoding'], undefined, `${method}: and was not re-chunked`)
    t.equal(first.body, SMUGGLED, `${method}: the upstream read the bytes as a body`)
    t.equal(first.headers['x-forwarded-for'], '127.0.0.1', `${method}: the balancer's own headers are there`)
    t.notMatch(reply, /answer to GET \/admin/, `${method}: no client saw an /admin response`)
  }

  // Chunked, with Connection naming the framing and the Host too.
  up.seen.length = 0
  const chunk = `${SMUGGLED.length.toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`
  await rawExchange(
    port,
    `DELETE /c HTTP/1.1\r\nHost: x\r\nConnection: transfer-encoding, host, close\r\nTransfer-Encoding: chunked\r\n\r\n${chunk}`,
  )
  t.same(
    up.seen.map(p => `${p.method} ${p.url} ${p.headers.host}`),
    ['DELETE /c x'],
    'chunked: one request, its Host kept',
  )
  t.equal(up.seen[0]?.headers['transfer-encoding'], 'chunked', 'chunked: sent chunked')
  t.equal(up.seen[0]?.body, SMUGGLED, 'chunked: the bytes arrived as the body')
})

t.test('bug 1: a smuggle cannot poison the response queue of a reused upstream connection', async t => {
  // The upstream holds any /admin answer back: were one smuggled, the next client on the kept-
  // alive upstream connection would be handed it.
  const up = await recordingUpstream(t, (p, send) => (p.url === '/admin' ? setImmediate(send) : send()))
  const { port } = await startBalancer(t, [up.spec])
  const attacker = await rawExchange(
    port,
    `GET / HTTP/1.1\r\nHost: x\r\nConnection: content-length, close\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
  )
  t.match(attacker, /answer to GET \/\n$/, 'the attacker got its own answer')
  for (let i = 0; i < 3; i++) {
    const victim = await fetchText(port, { path: `/victim-${i}`, headers: { connection: 'close' } })
    t.equal(victim.body, `answer to GET /victim-${i}\n`, `client ${i} after it got the answer to its own request`)
  }
  t.equal(up.seen.filter(p => p.url === '/admin').length, 0, 'no /admin ever reached the upstream')
  t.equal(up.seen.length, 4, 'one upstream request per client request')
})

const badStatus = (line: string) => `HTTP/1.1 ${line}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi`

t.test('bug 2: an upstream status line the balancer cannot pass on never crashes it', async t => {
  // A concurrent download from another upstream must not be cut by any of it.
  const slow = await startRawUpstream(t, (socket, received) => {
    if (!received.includes('\r\n\r\n') || (socket as Socket & { began?: true }).began) return
    ;(socket as Socket & { began?: true }).began = true
    socket.write('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nfirst')
  })
  const slowBalancer = await startBalancer(t, [slow.spec])
  const download = rawClient(slowBalancer.port)
  download.socket.write('GET /big HTTP/1.1\r\nHost: x\r\n\r\n')
  await download.until(/first$/)

  for (const reason of ['O\x01K', 'O\x00K', 'O\x7fK', '\x1b[31mred']) {
    const bad = await startRawUpstream(t, socket => socket.end(badStatus(`200 ${reason}`)))
    const { port, balancer } = await startBalancer(t, [bad.spec])
    const reply = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    t.match(reply, /^HTTP\/1\.1 200 OK\r\n[^]*\r\n\r\nhi$/, `reason ${JSON.stringify(reason)}: forwarded with the standard reason phrase`)
    t.equal(balancer.pool.upstreams[0]?.stats.failures.invalid, 0, `reason ${JSON.stringify(reason)}: not a failure`)
  }
  for (const status of ['099', '000', '600', '999']) {
    const bad = await startRawUpstream(t, socket => socket.end(badStatus(`${status} Odd`)))
    const { port, balancer, logs } = await startBalancer(t, [bad.spec])
    const reply = await fetchText(port)
    t.equal(reply.status, 502, `status ${status}: 502`)
    t.match(reply.body, /^502 Bad Gateway: /, `status ${status}: a short text body`)
    t.equal(reply.headers['x-content-type-options'], 'nosniff', `status ${status}: not sniffed`)
    t.equal(balancer.pool.upstreams[0]?.stats.failures.invalid, 1, `status ${status}: counted as invalid`)
    t.match(logs, [/marked down: 1 failure\(s\) in 10s, last: SWITCHYARD_INVALID_RESPONSE/], `status ${status}: logged once, by code`)
  }
  download.socket.destroy()
  t.equal(download.received.endsWith('first'), true, 'the concurrent download was never cut')
})

t.test('bug 2: under --workers 2 a bad status line is a 502 and no worker dies', async t => {
  const bad = await startRawUpstream(t, socket => socket.end(badStatus('099 Odd')))
  const r = run(['--port', '0', '--host', '127.0.0.1', '--workers', '2', '--quiet', '--upstream', bad.spec])
  t.teardown(() => void r.child.kill('SIGKILL'))
  const port = Number(/:(\d+),/.exec(await r.line(/listening on/))?.[1])
  // Fresh connections: node:cluster deals them out to both workers.
  for (let i = 0; i < 6; i++) t.equal((await fetchText(port, { headers: { connection: 'close' } })).status, 502, `request ${i}: 502`)
  r.child.kill('SIGTERM')
  t.equal(await r.exit, 0, 'the workers drained and the primary exited 0')
  t.equal(r.stdout.filter(l => /worker \d+ exited/.test(l)).length, 0, 'no worker exited before the stop')
})

t.test('bug 3: an upstream that answers an upload early leaks nothing and hangs no client', async t => {
  // Answers 401 as soon as it has the head and keeps the connection open, reading (and dropping)
  // the rest; the first connection stops reading instead, the worst case for the balancer.
  const upstreamSockets = new Set<Socket>()
  let closedUpstream = 0
  const early = await startRawUpstream(t, (socket, received) => {
    if (upstreamSockets.has(socket) || !received.includes('\r\n\r\n')) return
    upstreamSockets.add(socket)
    socket.once('close', () => closedUpstream++)
    socket.write('HTTP/1.1 401 Unauthorized\r\nContent-Length: 5\r\n\r\nnope!')
    // A socket that reads nothing never sees the balancer close it: it is left out of the count.
    if (upstreamSockets.size === 1) socket.pause()
  })
  const { port, balancer } = await startBalancer(t, [early.spec])
  const clients = Array.from({ length: 10 }, () => rawClient(port))
  for (const c of clients) {
    c.socket.write(`PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n${'a'.repeat(100_000)}`)
  }
  for (const [i, c] of clients.entries()) {
    await c.until(/nope!$/)
    t.match(c.received, /^HTTP\/1\.1 401 Unauthorized\r\n/, `client ${i}: got the 401`)
    t.match(c.received, /\r\nconnection: close\r\n/i, `client ${i}: marked Connection: close`)
    // The rest of the body, and a pipelined request: answered at once or refused, never left hanging.
    c.socket.write(`${'b'.repeat(100_000)}GET /next HTTP/1.1\r\nHost: x\r\n\r\n`)
  }
  for (const [i, c] of clients.entries()) {
    const all = await c.closed
    t.notMatch(all, /\/next|HTTP\/1\.1 [^4]/, `client ${i}: the connection closed after the 401, /next was refused, not left pending`)
  }
  // Every upstream socket is destroyed with its request, not kept for reuse half-written.
  await new Promise<void>(resolve => {
    const check = () => (closedUpstream === upstreamSockets.size - 1 ? resolve() : setImmediate(check))
    check()
  })
  t.equal(closedUpstream, 9, 'every upstream connection that reads was closed by the balancer')
  t.same(Object.keys(balancer.agent.sockets), [], 'no upstream socket is left in the agent')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'nothing is left in flight')
  for (const socket of upstreamSockets) socket.destroy()
})

t.test('bug 3: an early answer to a body the upstream does read keeps the upstream connection clean', async t => {
  // A node:http upstream answers 413 without reading, and then reads and drops the body itself.
  const up = await recordingUpstream(t)
  up.server.removeAllListeners('request')
  up.server.on('request', (req, res) => {
    up.seen.push({ method: req.method as string, url: req.url as string, headers: req.headers, body: '', connection: 0 })
    res.statusCode = 413
    res.end('too big\n')
  })
  const { port } = await startBalancer(t, [up.spec])
  const c = rawClient(port)
  c.socket.write(`POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n${'a'.repeat(1000)}`)
  await c.until(/too big\n$/)
  c.socket.end('b'.repeat(299_000))
  await c.closed
  t.match(c.received, /^HTTP\/1\.1 413 /, 'the client got the 413')
  const next = await fetchText(port, { path: '/after' })
  t.equal(next.status, 413, 'the next request is answered')
  t.same(
    up.seen.map(p => p.url),
    ['/up', '/after'],
    'the upstream never read the rest of the upload as a request',
  )
})

t.test('bug 4: a 101 to a plain request is a 502 at once, and frees its max_conns slot', async t => {
  const switching = await startRawUpstream(t, socket =>
    socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n'),
  )
  const { port, balancer } = await startBalancer(t, [`${switching.spec}`], {
    upstreams: [{ host: '127.0.0.1', port: Number(switching.spec.split(':')[1]), maxConns: 1 }],
    queueTimeout: 60_000,
  })
  for (let i = 0; i < 3; i++) {
    const reply = await fetchText(port)
    t.equal(reply.status, 502, `request ${i}: 502, not a hang nor a 503 from the queue`)
    t.match(reply.body, /^502 Bad Gateway: /, `request ${i}: a short text body`)
  }
  const u = balancer.pool.upstreams[0]
  t.equal(u?.stats.failures.invalid, 3, 'each counted as an invalid response')
  t.equal(u?.inFlight, 0, 'the slot was given back each time')
})

t.test('bug 5: a GET on a kept-alive connection the upstream closes as it is reused is resent, not a 502', async t => {
  for (const how of ['FIN', 'RST'] as const) {
    // Answers the first request on each connection, then closes when the next arrives on it.
    const lines: string[][] = []
    const racy = await startRawUpstream(t, (socket, received) => {
      const s = socket as Socket & { i?: number; answered?: true }
      s.i ??= lines.push([]) - 1
      const heads = received.match(/^[A-Z]+ \S+ HTTP\/1\.1(?=\r\n)/gm) ?? []
      ;(lines[s.i] as string[]).splice(0, Infinity, ...heads)
      if (heads.length > 1) {
        if (how === 'FIN') socket.destroy()
        else socket.resetAndDestroy()
      } else if (s.answered === undefined && /\r\n\r\n(x|$)/.test(received) && !/content-length: 1\r\n[^]*\r\n\r\n$/i.test(received)) {
        s.answered = true
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n')
      }
    })
    const { port, logs, balancer } = await startBalancer(t, [racy.spec])
    t.equal((await fetchText(port, { path: '/1' })).status, 200, `${how}: the first GET opens the connection`)
    const second = await fetchText(port, { path: '/2' })
    t.equal(second.status, 200, `${how}: the GET that hit the closing connection is answered 200, as nginx does`)
    t.same(lines, [['GET /1 HTTP/1.1', 'GET /2 HTTP/1.1'], ['GET /2 HTTP/1.1']], `${how}: it was resent once, on a new connection`)
    t.equal(logs.length, 0, `${how}: not held against the upstream`)
    t.same(balancer.pool.upstreams[0]?.stats.failures, { connect: 0, timeout: 0, reset: 0, invalid: 0 }, `${how}: no failure counted`)
    t.equal(balancer.pool.upstreams[0]?.stats.retries, 0, `${how}: not a retry: --retries is not used up`)

    // A PUT with a body held in full is resent with it.
    lines.length = 0
    t.equal((await fetchText(port, { path: '/p' })).status, 200, `${how}: a new connection`)
    const put = await fetchText(port, { method: 'PUT', path: '/put', body: 'x' })
    t.equal(put.status, 200, `${how}: a PUT in the same race is resent too`)
    t.same(lines, [['GET /p HTTP/1.1', 'PUT /put HTTP/1.1'], ['PUT /put HTTP/1.1']], `${how}: on a new connection`)

    // A POST is never sent twice, not even then.
    lines.length = 0
    t.equal((await fetchText(port, { path: '/3' })).status, 200, `${how}: a new connection again`)
    const post = await fetchText(port, { method: 'POST', path: '/4', body: 'x' })
    t.equal(post.status, 502, `${how}: a POST in the same race is 502`)
    t.same(lines, [['GET /3 HTTP/1.1', 'POST /4 HTTP/1.1']], `${how}: and reached the upstream once`)
  }
})

t.test('bug 6: an absolute-form target is rewritten to origin-form, with Host from the target', async t => {
  const up = await recordingUpstream(t)
  const { port, entries } = await startBalancer(t, [up.spec])
  const reply = await rawExchange(port, 'GET http://evil.example/echo?q=1 HTTP/1.1\r\nHost: good.example\r\nConnection: close\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 200 /, 'answered')
  const seen = up.seen[0] as Parsed
  t.equal(seen.url, '/echo?q=1', 'the upstream got origin-form')
  t.equal(seen.headers.host, 'evil.example', "Host is the target's authority, as RFC 9112 §3.2.2 and nginx say")
  t.equal(seen.headers['x-forwarded-host'], 'evil.example', 'X-Forwarded-Host agrees with it')
  t.equal(entries[0]?.path, '/echo?q=1', 'the access log agrees too')
  await rawExchange(port, 'GET HTTP://[::1]:8080 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.same([up.seen[1]?.url, up.seen[1]?.headers.host], ['/', '[::1]:8080'], 'an empty path is /, an IPv6 authority is kept')
  await rawExchange(port, 'GET http://example.com?a=b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(up.seen[2]?.url, '/?a=b', 'a query without a path gets the / back')
  await rawExchange(port, 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(up.seen[3]?.url, '*', 'OPTIONS * passes as it is')
  for (const target of ['ftp://x/', 'http://user@evil.example/', 'http://a b/']) {
    const refused = await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`)
    t.match(refused, /^HTTP\/1\.1 400 Bad Request\r\n[^]*connection: close/i, `${target}: 400, connection closed`)
  }
  t.equal(up.seen.length, 4, 'no refused target reached the upstream')
})

t.test('bugs 7 and 8: transfer codings the balancer cannot pass on are refused as nginx refuses them', async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  const cases: [string, string, RegExp][] = [
    [
      'gzip, chunked',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 501 Not Implemented\r\n/,
    ],
    [
      'two Transfer-Encoding lines',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*more than one Transfer-Encoding header/,
    ],
    // Node's parser refuses this one itself; the balancer gives its answer a text body.
    [
      'two chunked lines',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 Bad Request\r\n[^]*malformed/,
    ],
    ['GET *', 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400 Bad Request\r\n[^]*not a path/],
    [
      'HTTP/1.0 with Transfer-Encoding',
      'POST / HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      /^HTTP\/1\.1 400 Bad Request\r\n/,
    ],
    ['HTTP/2.0 on an HTTP/1 connection', 'GET / HTTP/2.0\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 505 HTTP Version Not Supported\r\n/],
    ['HTTP/0.9', 'GET / HTTP/0.9\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 400 Bad Request\r\n[^]*HTTP\/0\.9 requests are not served/],
  ]
  for (const [name, raw, status] of cases) {
    // Another request pipelined behind: the connection must close, so it is never read.
    const reply = await rawExchange(port, `${raw}GET /after HTTP/1.1\r\nHost: x\r\n\r\n`)
    t.match(reply, status, `${name}: refused`)
    t.match(reply, /\r\nconnection: close\r\n/i, `${name}: the connection closes`)
    t.match(reply, /\r\nx-content-type-options: nosniff\r\n/i, `${name}: the text answer is not sniffed`)
    t.equal(reply.match(/HTTP\/1\.1 /g)?.length, 1, `${name}: one answer, the pipelined request never read`)
  }
  t.equal(up.seen.length, 0, 'none reached the upstream')
  const huge = await rawExchange(port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`)
  t.match(
    huge,
    /^HTTP\/1\.1 431 [^]*\r\n\r\n431 Request Header Fields Too Large: the request headers are larger than 16 KB\n$/,
    "Node's own refusals get a text body too",
  )
  const chunked = await rawExchange(
    port,
    'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked \r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n',
  )
  t.match(chunked, /^HTTP\/1\.1 200 /, 'chunked alone, in any case, still passes')
  t.equal(up.seen[0]?.body, 'hi', 'with its body')
})

t.test('the refusals apply to WebSocket upgrades too', async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  const reply = await rawExchange(
    port,
    'GET / HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  )
  t.match(reply, /^HTTP\/1\.1 400 Bad Request\r\n[^]*nosniff[^]*Transfer-Encoding in an HTTP\/1\.0 request/i, '400 on the raw socket')
  t.equal(up.seen.length, 0, 'nothing reached the upstream')
})

// What the seeded fuzz test (fuzz.ts) found beyond the eight, each pinned by a test.

const WS_HEAD =
  'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'

t.test('Host: missing on HTTP/1.1 or empty is 400 and closes; HTTP/1.0 may leave it out', async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  const missing = await rawExchange(port, 'GET /a HTTP/1.1\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n')
  t.match(missing, /^HTTP\/1\.1 400 Bad Request\r\n[^]*needs a Host header/, 'no Host on HTTP/1.1: 400 with a line saying why')
  const empty = await rawExchange(port, 'GET /a HTTP/1.0\r\nHost: \r\n\r\n')
  t.match(empty, /^HTTP\/1\.1 400 Bad Request\r\n/, 'an empty Host: 400, as nginx')
  t.equal(up.seen.length, 0, 'neither, nor what was pipelined behind, reached the upstream')
  const old = await rawExchange(port, 'GET /old HTTP/1.0\r\n\r\n')
  t.match(old, /^HTTP\/1\.1 200 /, 'HTTP/1.0 without Host is served')
  t.equal(up.seen[0]?.url, '/old', 'and forwarded')
})

t.test('a request pipelined behind a refused one never reaches the upstream, even on a warm connection pool', async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  t.equal((await fetchText(port, { path: '/warm' })).status, 200, 'a kept-alive upstream connection is ready')
  for (const bad of [
    'GET /a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n',
    'GET ftp://x/ HTTP/1.1\r\nHost: x\r\n\r\n',
    'POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n',
  ]) {
    // One write: Node parses both before the first is answered, and hands both over.
    const reply = await rawExchange(port, `${bad}GET /after HTTP/1.1\r\nHost: x\r\n\r\n`)
    t.equal(reply.match(/^HTTP\/1\.1 /gm)?.length, 1, `${JSON.stringify(bad.slice(0, 24))}: one answer, then the close`)
  }
  t.same(
    up.seen.map(p => p.url),
    ['/warm'],
    'no /after ever reached the upstream',
  )
})

t.test('an upgrade or CONNECT pipelined behind an unanswered request is cut off, never answered out of order', async t => {
  let release: () => void = () => {}
  const held = new Promise<void>(resolve => (release = resolve))
  const up = await recordingUpstream(t, (_p, send) => void held.then(send))
  const { port } = await startBalancer(t, [up.spec])
  for (const second of [WS_HEAD + '\r\n', 'CONNECT evil.example:443 HTTP/1.1\r\nHost: x\r\n\r\n']) {
    const reply = await rawExchange(port, `HEAD /first HTTP/1.1\r\nHost: x\r\n\r\n${second}`)
    t.equal(reply, '', `${second.split(' ')[0]}: nothing was written that the client would read as the answer to its HEAD`)
  }
  release()
  // The HEADs die with their connections, before or after reaching the upstream.
  t.ok(
    up.seen.every(p => p.url === '/first'),
    'nothing but the HEADs reached the upstream',
  )
})

t.test('WebSocket: X-Forwarded-For is read when the upgrade comes, and an upgrade with a body is refused', async t => {
  const sockets: string[] = []
  const up = await startRawUpstream(t, (socket, received) => {
    if (!received.includes('\r\n\r\n')) return
    sockets.push(received)
    socket.destroy()
  })
  const { port } = await startBalancer(t, [up.spec])
  // The client leaves as soon as it has sent the upgrade: its socket has no address any more
  // by the time the upstream connection is open.
  const leaving = connect(port, '127.0.0.1', () => leaving.end(`${WS_HEAD}\r\n`))
  leaving.on('error', () => {})
  await new Promise<void>(resolve => {
    const check = () => (sockets.length > 0 ? resolve() : setImmediate(check))
    check()
  })
  t.match(sockets[0], /\r\nx-forwarded-for: 127\.0\.0\.1\r\n/i, 'the upstream got the address, not "undefined"')
  const withBody = await rawExchange(port, `${WS_HEAD}Content-Length: 5\r\n\r\nhello`)
  t.match(withBody, /^HTTP\/1\.1 400 Bad Request\r\n[^]*cannot carry a body/, 'an upgrade with a body: 400 (RFC 6455 §4.1)')
  t.equal(sockets.length, 1, 'and it never reached the upstream')
})

t.test('WebSocket: a non-101 answer follows the rules of any response', async t => {
  const answers: Record<string, string> = {
    '/bad-status': 'HTTP/1.1 099 Odd\r\nContent-Length: 2\r\n\r\nhi',
    '/too-high': 'HTTP/1.1 600 Odd\r\nContent-Length: 2\r\n\r\nhi',
    '/bad-reason': 'HTTP/1.1 403 No\x01pe\r\nX-Obs: a\xe9\xffb\r\nContent-Length: 2\r\n\r\nhi',
    '/stall': 'HTTP/1.1 404 Gone\r\nContent-Length: 10\r\n\r\nhi',
  }
  const up = await startRawUpstream(t, (socket, received) => {
    const path = /^GET (\S+)/.exec(received)?.[1] as string
    if (received.includes('\r\n\r\n')) socket.write(Buffer.from(answers[path] as string, 'latin1'))
  })
  const { port, balancer } = await startBalancer(t, [up.spec], { timeout: 300 })
  const ask = (path: string) =>
    new Promise<Buffer>(resolve => {
      const c = connect(port, '127.0.0.1', () => c.write(WS_HEAD.replace('/ws', path) + '\r\n'))
      const got: Buffer[] = []
      c.on('data', d => got.push(d))
      c.on('error', () => {})
      c.on('close', () => resolve(Buffer.concat(got)))
    })
  for (const path of ['/bad-status', '/too-high']) {
    t.match((await ask(path)).toString('latin1'), /^HTTP\/1\.1 502 Bad Gateway\r\n/, `${path}: 502`)
  }
  t.equal(balancer.pool.upstreams[0]?.stats.failures.invalid, 2, 'both counted as invalid')
  const reason = (await ask('/bad-reason')).toString('latin1')
  t.match(reason, /^HTTP\/1\.1 403 Forbidden\r\n/, 'a reason phrase with a control byte is replaced by the standard one')
  t.match(reason, /\r\nX-Obs: a\xe9\xffb\r\n/, 'obs-text header bytes pass byte for byte, not re-encoded as UTF-8')
  const stalled = (await ask('/stall')).toString('latin1')
  t.match(stalled, /^HTTP\/1\.1 404 Gone\r\n[^]*\r\n\r\nhi$/, 'a body that stalls is cut after --timeout, the client not left hanging')
})

t.test("Node's parser refusals: no body when the request may have been a HEAD", async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  const head = await rawExchange(port, 'HEAD /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')
  t.match(head, /^HTTP\/1\.1 400 Bad Request\r\n[^]*Content-Length: \d+\r\nConnection: close\r\n\r\n$/, 'HEAD: the head alone')
  const get = await rawExchange(port, 'GET /a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n')
  t.match(get, /\r\n\r\n400 Bad Request: the request is malformed \(HPE_\w+\)\n$/, 'GET: with the text line')
})

t.test("absolute-form targets lose only their scheme's default port", async t => {
  const up = await recordingUpstream(t)
  const { port } = await startBalancer(t, [up.spec])
  for (const [target, host] of [
    ['http://a.example:80/x', 'a.example'],
    ['https://b.example:443/x', 'b.example'],
    ['http://c.example:443/x', 'c.example:443'],
    ['https://d.example:8443/x', 'd.example:8443'],
  ]) {
    await rawExchange(port, `GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)
    t.equal(up.seen.at(-1)?.headers.host, host, `${target}: Host ${host}`)
  }
})

t.test('a client that leaves while its request waits on a reused connection is not taken for the keep-alive race', async t => {
  const up = await recordingUpstream(t, (p, send) => (p.url === '/slow' ? undefined : send()))
  const { port, balancer, entries } = await startBalancer(t, [up.spec])
  t.equal((await fetchText(port, { path: '/warm' })).status, 200, 'a kept-alive upstream connection is ready')
  const c = rawClient(port)
  c.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n')
  await new Promise<void>(resolve => {
    const check = () => (up.seen.length === 2 ? resolve() : setImmediate(check))
    check()
  })
  c.socket.destroy()
  await new Promise<void>(resolve => {
    const check = () => (entries.length === 2 ? resolve() : setImmediate(check))
    check()
  })
  await new Promise(resolve => setImmediate(resolve))
  t.equal(entries[1]?.status, 499, 'logged as 499')
  t.equal(balancer.pool.upstreams[0]?.inFlight, 0, 'nothing was sent again')
  t.same(
    up.seen.map(p => p.url),
    ['/warm', '/slow'],
    'the upstream saw /slow once',
  )
})

t.test('peerOf: a socket that is gone has no address', async t => {
  const { peerOf } = await import('../src/forward/headers.js')
  const { Socket: NetSocket } = await import('node:net')
  t.equal(peerOf(new NetSocket()), '-', 'an unconnected socket')
})
