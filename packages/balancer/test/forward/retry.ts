// Which failed tries go again, and what a request is answered when none may.
import t from 'tap'
import { InvalidResponseError, UpstreamConnectTimeoutError, UpstreamTimeoutError } from '../../src/errors.js'
import { giveUpAnswer, mayResend, mayRetry, statusForUpstreamError, type Replayable } from '../../src/forward/retry.js'
import { Upstream } from '../../src/upstreams/upstream.js'
import { closedPort, fetchText, rawExchange, startBalancer, startRawUpstream, startUpstream } from '../fixtures/servers.js'

/** An upstream that reads a request in full, then resets the connection without answering. */
async function resettingUpstream(t: Parameters<typeof startRawUpstream>[0]) {
  return startRawUpstream(t, (socket, received) => {
    const head = received.indexOf('\r\n\r\n')
    if (head < 0) return
    const length = Number(/content-length: (\d+)/i.exec(received)?.[1] ?? 0)
    if (received.length - head - 4 >= length) socket.resetAndDestroy()
  })
}

t.test('a POST that reached an upstream which reset is answered 502 and not sent again', async t => {
  const reset = await resettingUpstream(t)
  const b = await startUpstream(t, 'b')
  const { port } = await startBalancer(t, [reset.spec, b.spec])
  const reply = await fetchText(port, { method: 'POST', path: '/pay', body: 'amount=10' })
  t.equal(reply.status, 502, '502')
  t.match(reply.headers['content-type'], /^text\/plain/, 'text/plain')
  t.match(
    reply.body,
    /^502 Bad Gateway: upstream 127\.0\.0\.1:\d+ closed the connection without a complete answer\n$/,
    'the body says what failed',
  )
  t.equal(reset.connections, 1, 'the POST reached the first upstream once')
  t.equal(b.seen.length, 0, 'and was not sent to the second')
})

t.test('a request refused everywhere is 502; once all are down, 503', async t => {
  const [x, y] = [await closedPort(), await closedPort()]
  const { port, access } = await startBalancer(t, [x, y])
  const first = await fetchText(port, { method: 'POST', body: 'data' })
  t.equal(first.status, 502, 'tried both, both failed: 502')
  t.match(
    first.body,
    /^502 Bad Gateway: 2 upstreams were tried; the last, 127\.0\.0\.1:\d+, refused the connection\n$/,
    'with a body that says what happened, in words',
  )
  const second = await fetchText(port)
  t.equal(second.status, 503, 'nothing left to try: 503')
  t.match(second.body, /^503 Service Unavailable: no upstream available/, 'with a body')
  const pipelined = await rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
  t.equal(pipelined.match(/HTTP\/1\.1 503 /g)?.length, 2, 'a bodiless request keeps its connection for the next')
  const head = await fetchText(port, { method: 'HEAD' })
  t.equal(head.status, 503, 'HEAD: 503')
  t.equal(head.body, '', 'HEAD: no body')
  t.match(access[1], /^GET \/ 503 - /, 'access log line: method, path, status, no upstream, duration')
})

t.test('which failed tries may go again, as nginx proxy_next_upstream decides', async t => {
  const refused = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' })
  const reset = Object.assign(new Error('reset'), { code: 'ECONNRESET' })
  const timeout = new UpstreamTimeoutError()
  const held = { replayable: true }
  const streamed = { replayable: false }
  const table: [string, boolean, Error, string, Replayable | undefined, boolean, boolean][] = [
    ['never connected: always, a POST too', false, refused, 'POST', streamed, false, true],
    ['a connect timeout is never connected', false, new UpstreamConnectTimeoutError(), 'PATCH', undefined, false, true],
    ['a GET the upstream reset', true, reset, 'GET', undefined, false, true],
    ['a PUT whose body is held', true, reset, 'PUT', held, false, true],
    ['a PUT whose body streamed past the hold limit', true, reset, 'PUT', streamed, false, false],
    ['a POST that reached the upstream', true, reset, 'POST', undefined, false, false],
    ['a response timeout: not by default', true, timeout, 'GET', undefined, false, false],
    ['a response timeout with retryOnTimeout', true, timeout, 'GET', undefined, true, true],
  ]
  for (const [name, connected, err, method, body, retryOnTimeout, want] of table) {
    t.equal(mayRetry(connected, err, method, body, retryOnTimeout), want, name)
  }
  t.ok(mayResend('DELETE', undefined), 'the keep-alive race: an idempotent request is sent again')
  t.notOk(mayResend('POST', undefined), 'a POST is not')
  t.notOk(mayResend('GET', streamed), 'nor a request whose body is not held')
})

t.test('what a request is answered when no try is left: the status, and in words what happened, with no code', async t => {
  const a = new Upstream({ host: '127.0.0.1', port: 5000 }, { maxFails: 1, failTimeout: 1000 })
  const timeouts = { connectTimeout: 500, timeout: 60_000 }
  const coded = (code: string) => Object.assign(new Error(code), { code })
  t.same(
    giveUpAnswer(undefined, undefined, { timeouts }),
    { status: 503, message: '503 Service Unavailable: no upstream available: every upstream is marked down' },
    'nothing tried: 503',
  )
  t.same(
    giveUpAnswer(undefined, undefined, { full: true, timeouts }),
    { status: 503, message: '503 Service Unavailable: every upstream is at max_conns' },
    'every one full: 503 that says so',
  )
  const table: [string, Error, number, string][] = [
    ['refused', coded('ECONNREFUSED'), 502, '502 Bad Gateway: upstream 127.0.0.1:5000 refused the connection'],
    ['reset', coded('ECONNRESET'), 502, '502 Bad Gateway: upstream 127.0.0.1:5000 closed the connection without a complete answer'],
    ['a broken pipe', coded('EPIPE'), 502, '502 Bad Gateway: upstream 127.0.0.1:5000 closed the connection without a complete answer'],
    ['a response timeout', new UpstreamTimeoutError(), 504, '504 Gateway Timeout: upstream 127.0.0.1:5000 did not answer within 60s'],
    [
      'a connect timeout',
      new UpstreamConnectTimeoutError(),
      504,
      '504 Gateway Timeout: upstream 127.0.0.1:5000 could not be connected to within 500ms',
    ],
    [
      'an invalid status',
      new InvalidResponseError('bad'),
      502,
      '502 Bad Gateway: upstream 127.0.0.1:5000 sent a response that is not valid HTTP',
    ],
    [
      "Node's parser",
      coded('HPE_INVALID_CONSTANT'),
      502,
      '502 Bad Gateway: upstream 127.0.0.1:5000 sent a response that is not valid HTTP',
    ],
    [
      'an untrusted certificate',
      coded('DEPTH_ZERO_SELF_SIGNED_CERT'),
      502,
      '502 Bad Gateway: upstream 127.0.0.1:5000 could not be reached over TLS: its certificate or handshake failed',
    ],
    ['anything else', coded('EHOSTUNREACH'), 502, '502 Bad Gateway: upstream 127.0.0.1:5000 could not be reached'],
  ]
  for (const [name, err, status, message] of table) t.same(giveUpAnswer(err, a, { timeouts }), { status, message }, name)
  t.same(
    giveUpAnswer(new UpstreamTimeoutError(), a, { full: true, tries: 3, timeouts: { connectTimeout: 5000, timeout: 1500 } }),
    { status: 504, message: '504 Gateway Timeout: 3 upstreams were tried; the last, 127.0.0.1:5000, did not answer within 1.5s' },
    'after retries: how many, and the last',
  )
  t.equal(statusForUpstreamError(new UpstreamConnectTimeoutError()), 504, 'a connect timeout: 504')
  t.equal(statusForUpstreamError(new InvalidResponseError('bad')), 502, 'an invalid response: 502')
})
