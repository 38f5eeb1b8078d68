import { once } from 'node:events'
import { createServer as createHttpServer, type IncomingHttpHeaders } from 'node:http'
import {
  connect,
  constants,
  createSecureServer,
  type ClientHttp2Session,
  type IncomingHttpHeaders as H2Headers,
  type OutgoingHttpHeaders,
  type ServerHttp2Stream,
} from 'node:http2'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import httpProxy from 'http-proxy'
import t, { type Test } from 'tap'
import {
  h2Messages,
  h2Refusal,
  type H2Request,
  type H2Response,
  requestHeadersFromH2,
  responseHeadersForH2,
} from '../../src/server/h2-messages.js'
import { issue, makeCa, type TestCa } from '../fixtures/certs.js'
import { clientNoteOf, noteClient, tlsVersionOf } from '../../src/forward/headers.js'

/** What a handler saw of one HTTP/2 request. */
interface Seen {
  headers: IncomingHttpHeaders
  rawHeaders: string[]
  url: string
  method: string
  httpVersion: string
  refusal: string | undefined
}

/** An HTTP/2 server over real TLS on port 0 with the adapted classes, and a client of it trusting the test CA. */
async function h2Pair(t: Test, handler: (req: H2Request, res: H2Response) => void): Promise<{ client: ClientHttp2Session; ca: TestCa }> {
  const ca = makeCa(t)
  const leaf = issue(ca, { names: ['localhost', '127.0.0.1'] })
  const server = createSecureServer(leaf.pem)
  // Node passes the raw header list as a fourth argument, which its types leave out.
  server.on('stream', (stream: ServerHttp2Stream, headers: H2Headers, _flags: number, rawHeaders: string[]) =>
    handler(...h2Messages(stream, headers, rawHeaders)),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const client = connect(`https://localhost:${(server.address() as AddressInfo).port}`, { ca: ca.pem })
  client.on('error', () => {})
  t.teardown(() => {
    client.destroy()
    server.close()
  })
  return { client, ca }
}

/** Sends one request and reads the whole answer. */
async function exchange(
  client: ClientHttp2Session,
  headers: OutgoingHttpHeaders,
  body?: Buffer | string,
): Promise<{ headers: H2Headers; body: string }> {
  const stream = client.request(headers, { endStream: body === undefined })
  if (body !== undefined) stream.end(body)
  const [head] = (await once(stream, 'response')) as [H2Headers]
  let text = ''
  stream.setEncoding('utf8')
  for await (const chunk of stream) text += chunk
  return { headers: head, body: text }
}

t.test('the handler sees an HTTP/1.1 request: Host from :authority, no pseudo-header, a body framed as chunked', async t => {
  const seen: Seen[] = []
  const assigned: (string | undefined)[] = []
  const { client } = await h2Pair(t, (req, res) => {
    req.resume()
    req.on('end', () => {
      seen.push({
        headers: req.headers,
        rawHeaders: req.rawHeaders,
        url: req.url,
        method: req.method,
        httpVersion: req.httpVersion,
        refusal: h2Refusal(req),
      })
      // The forward path hands http-proxy other headers for a moment, as on an IncomingMessage.
      const own = req.headers
      req.headers = { host: 'swapped' }
      assigned.push(req.headers.host)
      req.headers = own
      res.end('ok')
    })
  })
  await exchange(client, { ':path': '/get?q=1', cookie: ['a=1', 'b=2'], 'x-test': 'yes', 'set-cookie': ['s=1', 's=2'] })
  await exchange(client, { ':method': 'POST', ':path': '/post' }, 'a body with no length')
  await exchange(client, { ':method': 'POST', ':path': '/sized', 'content-length': '4' }, 'four')
  const [get, post, sized] = seen as [Seen, Seen, Seen]
  t.equal(get.headers.host, 'localhost:' + String(get.headers.host).split(':')[1], 'Host is the :authority')
  t.notOk(
    Object.keys(get.headers).some(n => n.startsWith(':')),
    'no pseudo-header in headers',
  )
  t.notOk(
    get.rawHeaders.some((v, i) => i % 2 === 0 && v.startsWith(':')),
    'nor in rawHeaders',
  )
  t.equal(get.headers.cookie, 'a=1; b=2', 'split cookies joined as HTTP/1.1 sends them')
  t.equal(get.headers['x-test'], 'yes', 'other headers pass')
  t.same(
    get.rawHeaders.filter((_, i) => get.rawHeaders[i - 1] === 'set-cookie'),
    ['s=1', 's=2'],
    'a repeated field is one raw pair each',
  )
  t.equal(get.headers['transfer-encoding'], undefined, 'a GET ended by its HEADERS frame has no body')
  t.same([get.url, get.method, get.httpVersion], ['/get?q=1', 'GET', '2.0'], 'url, method and version as Node reads them')
  t.equal(get.refusal, undefined, 'a good request is not refused')
  t.equal(post.headers['transfer-encoding'], 'chunked', 'a body without a length is chunked upstream')
  t.equal(sized.headers['transfer-encoding'], undefined, 'a body with a length keeps it')
  t.equal(sized.headers['content-length'], '4', 'the length')
  t.same(assigned, ['swapped', 'swapped', 'swapped'], 'headers may be assigned')
  t.equal(sized.headers.host, get.headers.host, 'and assigned back')
})

t.test('through http-proxy to an HTTP/1.1 upstream: no pseudo-header reaches it, and no connection header comes back', async t => {
  let upstreamSaw: IncomingHttpHeaders | undefined
  const upstream = createHttpServer((req, res) => {
    upstreamSaw = req.headers
    req.resume()
    // Everything an HTTP/1.1 upstream may send that HTTP/2 forbids, and a repeated field.
    res.writeHead(200, 'Fine', [
      'Connection',
      'keep-alive',
      'Keep-Alive',
      'timeout=5',
      'Proxy-Connection',
      'keep-alive',
      'Upgrade',
      'h2c',
      'Transfer-Encoding',
      'chunked',
      'TE',
      'gzip',
      'Set-Cookie',
      'a=1',
      'Set-Cookie',
      'b=2',
      'X-Upstream',
      'yes',
    ])
    res.end('from upstream')
  })
  upstream.listen(0, '127.0.0.1')
  await once(upstream, 'listening')
  t.teardown(() => upstream.close())
  const proxy = httpProxy.createProxyServer({
    target: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`,
    selfHandleResponse: true,
  })
  proxy.on('proxyRes', (up, _req, res) => {
    ;(res as unknown as H2Response).writeHead(up.statusCode as number, up.statusMessage as string, up.rawHeaders)
    up.pipe(res)
  })
  const warnings: Error[] = []
  const onWarning = (w: Error): number => warnings.push(w)
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))
  const { client } = await h2Pair(t, (req, res) => proxy.web(req as never, res as never))
  const answer = await exchange(client, { ':path': '/through', 'x-client': 'c' })
  t.equal(answer.body, 'from upstream', 'the body came through')
  t.equal(answer.headers[':status'], 200, 'the status')
  for (const name of ['connection', 'keep-alive', 'proxy-connection', 'upgrade', 'transfer-encoding', 'te'])
    t.equal(answer.headers[name], undefined, `no ${name}`)
  t.same(answer.headers['set-cookie'], ['a=1', 'b=2'], 'repeated Set-Cookie kept')
  t.equal(answer.headers['x-upstream'], 'yes', 'other headers pass')
  t.notOk(
    Object.keys(upstreamSaw ?? {}).some(n => n.startsWith(':')),
    'the upstream saw no pseudo-header',
  )
  t.match(upstreamSaw?.host, /^localhost:\d+$/, 'and a Host')
  t.equal(upstreamSaw?.['x-client'], 'c', "and the client's headers")
  await new Promise(resolve => setImmediate(resolve))
  t.same(
    warnings.map(w => w.message),
    [],
    'no warning about the reason phrase',
  )
})

t.test('writeHead takes an object, with or without a reason, and folds repeats', async t => {
  const { client } = await h2Pair(t, (req, res) => {
    if (req.url === '/object') res.writeHead(201, { Connection: 'close', 'X-A': 'a', 'x-skip': undefined as unknown as string })
    else res.writeHead(202, 'Accepted', ['x-n', '1', 'X-N', '2', 'x-n', '3'])
    res.end()
  })
  const object = await exchange(client, { ':path': '/object' })
  t.equal(object.headers[':status'], 201, 'status from an object form')
  t.equal(object.headers['x-a'], 'a', 'names lower-cased')
  t.equal(object.headers.connection, undefined, 'a draining Connection: close is dropped')
  t.notOk('x-skip' in object.headers, 'an undefined value is left out')
  const list = await exchange(client, { ':path': '/list' })
  t.equal(list.headers[':status'], 202, 'status with a reason phrase')
  t.equal(list.headers['x-n'], '1, 2, 3', 'repeats of one name in any case are one field')
})

t.test('responseHeadersForH2 and requestHeadersFromH2 on their own', async t => {
  t.same(responseHeadersForH2(undefined), {}, 'no headers')
  t.same(
    responseHeadersForH2({ 'Set-Cookie': ['a=1'], 'set-cookie': 'b=2', n: 3 }),
    { 'set-cookie': ['a=1', 'b=2'], n: 3 },
    'arrays and strings merge; numbers pass',
  )
  t.same(responseHeadersForH2({ a: '1', A: ['2', '3'] }), { a: ['1', '2', '3'] }, 'a string then an array')
  t.same(
    requestHeadersFromH2({ ':method': 'GET', ':path': '/', host: 'h.test' }, [':method', 'GET', ':path', '/', 'host', 'h.test'], false),
    { host: 'h.test' },
    'a Host without :authority is kept',
  )
  // As Node hands them over: the object folds repeats, the flat list has each field as it came.
  const h2 = { __proto__: null, ':method': 'GET', ':authority': 'a.test', cookie: 'a=1; b=2', constructor: 'x', accept: 'a, b' }
  const raw = [':method', 'GET', ':authority', 'a.test', 'cookie', 'a=1', 'accept', 'a', 'cookie', 'b=2', 'constructor', 'x', 'accept', 'b']
  const h1 = requestHeadersFromH2(h2 as unknown as IncomingHttpHeaders, raw, false)
  t.same(
    Object.entries(h1),
    [
      ['cookie', 'a=1; b=2'],
      ['accept', 'a, b'],
      ['constructor', 'x'],
      ['host', 'a.test'],
    ],
    'each field once, folded, in the order it first came; a name Object.prototype has too is kept',
  )
})

t.test('h2Refusal: a Host that names another host than :authority', async t => {
  const seen: (string | undefined)[] = []
  const hosts: (string | undefined)[] = []
  const { client } = await h2Pair(t, (req, res) => {
    seen.push(h2Refusal(req))
    hosts.push(req.headers.host)
    res.end()
  })
  const port = client.socket.remotePort as number
  const cases: [OutgoingHttpHeaders, string | undefined, string][] = [
    [{ ':path': '/' }, undefined, 'no Host: :authority alone'],
    // Node's client sends no :authority when given a Host, as RFC 9113 §8.3.1 allows.
    [{ ':path': '/', host: 'other.test' }, undefined, 'no :authority: Host alone'],
    [{ ':path': '/', host: `LOCALHOST:${port}` }, undefined, 'a Host that matches :authority but for case'],
    [
      { ':path': '/', ':authority': `localhost:${port}`, host: 'evil.test' },
      '400 Bad Request: the Host header names another host than :authority',
      'another host',
    ],
  ]
  for (const [headers] of cases) await exchange(client, headers)
  cases.forEach(([, want, what], i) => t.equal(seen[i], want, what))
  t.equal(hosts[1], 'other.test', 'Host alone is the host')
  t.equal(hosts[3], `localhost:${port}`, ':authority wins over Host')
})

t.test('nghttp2 resets what h2Refusal relies on it to refuse, before any handler', async t => {
  let handled = 0
  const { client } = await h2Pair(t, (_req, res) => {
    handled++
    res.end()
  })
  // Node's client always sends :authority, but may send it empty, which nghttp2 treats as it
  // treats a request with no host at all.
  const cases: OutgoingHttpHeaders[] = [
    { ':path': '/', ':authority': '' },
    { ':path': 'relative' },
    { ':path': '*' },
    { ':path': 'http://a.test/' },
    { ':path': '/a b' },
  ]
  for (const headers of cases) {
    const stream = client.request(headers, { endStream: true })
    const closed = new Promise(resolve => stream.on('close', resolve))
    stream.on('error', () => {})
    await closed
    t.equal(stream.rstCode, constants.NGHTTP2_PROTOCOL_ERROR, `${JSON.stringify(headers)}: reset as malformed`)
  }
  t.equal(handled, 0, 'none was handed to the handler')
})

t.test('writableNeedDrain follows the stream, so a slow client is not taken for a slow upstream', async t => {
  const states: boolean[] = []
  let blocked = (): void => {}
  const isBlocked = new Promise<void>(resolve => (blocked = resolve))
  const { client } = await h2Pair(t, (_req, res) => {
    res.writeHead(200)
    states.push(res.writableNeedDrain)
    const chunk = Buffer.alloc(64 * 1024)
    // Write until the client's flow-control window is full: bounded, since it is 64 KB by default.
    for (let i = 0; i < 1000 && res.write(chunk); i++);
    states.push(res.writableNeedDrain)
    res.once('drain', () => {
      states.push(res.writableNeedDrain)
      res.end()
    })
    blocked()
  })
  const stream = client.request({ ':path': '/' }, { endStream: true })
  await once(stream, 'response')
  // Read nothing until the server is blocked, then everything.
  await isBlocked
  stream.resume()
  await once(stream, 'end')
  t.same(states, [false, true, false], 'false before, true when blocked, false once drained')
})

t.test('a client note made on the session is found through each request while its stream is open', async t => {
  const seen: unknown[] = []
  const { client } = await h2Pair(t, (req, res) => {
    const session = req.stream.session as NonNullable<typeof req.stream.session>
    if (req.url === '/first') noteClient(session, session.socket)
    seen.push(clientNoteOf(req))
    if (req.url === '/gone') {
      // A stream reset before the forward path reads the note: its session is gone from it.
      req.stream.destroy()
      seen.push(clientNoteOf(req))
      return
    }
    res.end('ok')
  })
  await exchange(client, { ':path': '/first' })
  await exchange(client, { ':path': '/second' })
  const gone = client.request({ ':path': '/gone' })
  gone.on('error', () => {})
  await once(gone, 'close')
  t.same(seen[0], { peer: '127.0.0.1', tlsVersion: undefined }, 'the address; no TLS version, which only the balancer’s listener notes')
  t.equal(seen[1], seen[0], 'the same note for the next request on the connection')
  t.equal(seen[2], seen[0], 'and while a stream is open')
  t.equal(seen[3], undefined, 'none once the stream is gone: the forward path reads its socket instead')
})

t.test('the request: its version, socket and completeness, and its body piped and unpiped', async t => {
  const seen: Record<string, unknown> = {}
  let firstChunk = (): void => {}
  const gotFirst = new Promise<void>(resolve => (firstChunk = resolve))
  const { client } = await h2Pair(t, (req, res) => {
    const session = req.stream.session as NonNullable<typeof req.stream.session>
    noteClient(session, session.socket)
    seen.version = [req.httpVersion, req.httpVersionMajor, req.httpVersionMinor]
    seen.socket = [req.socket.encrypted, req.socket.remoteAddress, req.socket.destroyed, tlsVersionOf(req.socket)]
    seen.sameSocket = req.socket === req.socket
    seen.completeBefore = req.complete
    const piped: Buffer[] = []
    const sink = new Writable({
      write(chunk: Buffer, _encoding, done) {
        piped.push(chunk)
        // Unpiped after the first chunk: what the client sends next does not reach it.
        req.unpipe(sink)
        firstChunk()
        done()
      },
    })
    req.pipe(sink)
    req.once('end', () => {
      seen.piped = Buffer.concat(piped).toString()
      seen.completeAfter = req.complete
      res.end('done')
    })
    // Nothing reads the rest once unpiped: resume() reads and drops it, as dropBody() does.
    void gotFirst.then(() => req.resume())
  })
  const stream = client.request({ ':method': 'POST', ':path': '/body' })
  stream.write('first')
  await gotFirst
  stream.end('second')
  const [head] = (await once(stream, 'response')) as [H2Headers]
  stream.resume()
  await once(stream, 'end')
  t.equal(head[':status'], 200, 'answered')
  t.same(seen.version, ['2.0', 2, 0], 'version 2.0')
  t.same(
    seen.socket,
    [true, '127.0.0.1', false, undefined],
    "the socket: encrypted, the noted address, not destroyed, no TLS version (only the balancer's listener notes one)",
  )
  t.equal(seen.sameSocket, true, 'one socket view per request')
  t.equal(seen.completeBefore, false, 'not complete before the body is read')
  t.equal(seen.piped, 'first', 'the unpiped sink got only the first chunk')
  t.equal(seen.completeAfter, true, 'complete once it ended')
})

t.test('the response: an implicit head, setHeader, encodings, and nothing thrown past the end or the client', async t => {
  const results: Record<string, unknown> = {}
  let gone = (): void => {}
  const wentAway = new Promise<void>(resolve => (gone = resolve))
  const { client } = await h2Pair(t, (req, res) => {
    switch (req.url) {
      case '/implicit':
        res.statusCode = 203
        res.setHeader('X-Set', 'by setHeader')
        res.setHeader('x-both', 'by setHeader')
        // The head goes out with the first write, with what setHeader set.
        results.firstWrite = res.write('caf\xe9 ', 'latin1')
        res.end('d\xe9j\xe0', 'latin1')
        results.afterEnd = [res.write('late'), res.end('later') === res]
        return
      case '/both':
        res.setHeader('x-both', 'by setHeader')
        res.writeHead(200, { 'x-both': 'by writeHead' })
        res.end()
        return
      case '/head':
        res.writeHead(200, { 'content-length': '5' })
        // HEAD has no body: respond() ended the stream, and what is written is dropped.
        results.headWrite = res.write('hello')
        res.end('hello')
        return
      case '/no-content':
        res.writeHead(204)
        results.noContentWrite = res.write('x')
        res.end()
        return
      default:
        // The client resets the stream; then everything is a no-op, and nothing throws.
        res.once('close', () => {
          res.writeHead(200, { 'x-late': 'yes' })
          results.gone = [res.write('x'), res.destroyed, res.headersSent, res.writableFinished]
          res.end('x')
          res.destroy()
          gone()
        })
    }
  })
  const implicit = client.request({ ':path': '/implicit' }, { endStream: true })
  const [head] = (await once(implicit, 'response')) as [H2Headers]
  const chunks: Buffer[] = []
  for await (const chunk of implicit) chunks.push(chunk as Buffer)
  t.equal(head[':status'], 203, 'the status set before the first write')
  t.equal(head['x-set'], 'by setHeader', 'a header set before it')
  t.equal(Buffer.concat(chunks).toString('latin1'), 'caf\xe9 d\xe9j\xe0', 'both writes in their encoding')
  t.equal(results.firstWrite, true, 'the first write was taken')
  t.same(results.afterEnd, [false, true], 'a write after the end is refused, a second end does nothing')
  t.equal((await exchange(client, { ':path': '/both' })).headers['x-both'], 'by writeHead', "writeHead's own header wins")
  const head2 = await exchange(client, { ':method': 'HEAD', ':path': '/head' })
  t.same([head2.headers[':status'], head2.headers['content-length'], head2.body], [200, '5', ''], 'HEAD: the head, no body')
  t.equal(results.headWrite, true, 'its body bytes dropped, not refused')
  const noContent = await exchange(client, { ':path': '/no-content' })
  t.same([noContent.headers[':status'], noContent.body], [204, ''], '204: no body')
  t.equal(results.noContentWrite, true, 'its body bytes dropped')
  const reset = client.request({ ':path': '/reset' }, { endStream: true })
  reset.on('error', () => {})
  reset.close(constants.NGHTTP2_CANCEL)
  await wentAway
  t.same(results.gone, [false, true, false, false], 'after a reset: a write refused, destroyed, no head sent, not finished')
})
