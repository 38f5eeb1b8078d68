// The admin listener, with the counting behind it: after requests of known outcome through a
// real balancer, /status.json and /metrics must report exactly those counts.
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { request, type IncomingMessage } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { AdminServer, createAdmin, localSource, type AdminSource } from '../../src/admin/server.js'
import type { Balancer } from '../../src/balancer.js'
import { mergeCounts, processCounts, type StatusSnapshot, type UpstreamStatus } from '../../src/observe/status.js'
import type { Upstream } from '../../src/upstreams/upstream.js'
import { parseExposition, valueOf, type Exposition } from '../fixtures/prometheus.js'
import { closedPort, fetchText, rawExchange, startBalancer, startRawUpstream, startUpstream, type Handler } from '../fixtures/servers.js'

/** An admin listener on 127.0.0.1, port 0, closed at teardown. */
async function startAdmin(t: Test, balancer: Balancer, interval?: number): Promise<number> {
  const admin = createAdmin(balancer, { interval })
  return listen(t, admin)
}

async function listen(t: Test, admin: AdminServer): Promise<number> {
  admin.listen(0, '127.0.0.1')
  await once(admin, 'listening')
  // Closed once: a test may have closed it already.
  t.teardown(() => new Promise<void>(resolve => (admin.listening ? admin.close(() => resolve()) : resolve())))
  return (admin.address() as AddressInfo).port
}

async function status(admin: number): Promise<StatusSnapshot> {
  const r = await fetchText(admin, { path: '/status.json' })
  return JSON.parse(r.body) as StatusSnapshot
}

async function metrics(admin: number): Promise<Exposition> {
  return parseExposition((await fetchText(admin, { path: '/metrics' })).body)
}

const row = (s: StatusSnapshot, id: string): UpstreamStatus => s.upstreams.find(u => u.id === id) as UpstreamStatus

/** An upstream answering by path: /missing 404, /boom 500, /moved 302, else 200 "ok <name>". */
const byPath =
  (name: string): Handler =>
  (req, res) => {
    if (req.url === '/missing') res.writeHead(404).end('no')
    else if (req.url === '/boom') res.writeHead(500).end('boom')
    else if (req.url === '/moved') res.writeHead(302, { location: '/' }).end()
    else res.writeHead(200, { 'x-cache': 'MISS' }).end(`ok ${name}`)
  }

t.test('after requests of known outcome, /status.json and /metrics report exactly them', async t => {
  const a = await startUpstream(t, 'a', byPath('a'))
  const b = await startUpstream(t, 'b', byPath('b'))
  const { balancer, port } = await startBalancer(t, [a.spec, b.spec])
  const admin = await startAdmin(t, balancer)
  // Round-robin alternates strictly, so each pair sends one request to each upstream.
  const pairs: [string, string][] = [
    ...Array<[string, string]>(5).fill(['GET', '/']),
    ...Array<[string, string]>(2).fill(['GET', '/missing']),
    ['POST', '/boom'],
    ['GET', '/moved'],
  ]
  for (const [method, path] of pairs) {
    for (let i = 0; i < 2; i++) await fetchText(port, { method, path, body: method === 'POST' ? 'hello' : undefined })
  }

  const s = await status(admin)
  t.equal(s.version, 1, 'shape version 1')
  t.equal(s.requests.total, 18, '18 requests in all')
  t.same(s.requests.unrouted, { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0 }, 'none answered by the balancer itself')
  t.equal(s.connections.total, 18 + 0, 'one connection per request (fetchText does not keep alive)')
  t.equal(s.policy, 'round-robin')
  t.equal(s.workers, 1)
  t.equal(s.draining, false)
  t.equal(s.rateSeconds.length, 300, 'five minutes of seconds')
  for (const u of [a, b]) {
    const r = row(s, u.spec)
    t.equal(r.requests, 9, `${u.spec}: 9 requests`)
    t.equal(r.share, 0.5, `${u.spec}: half the traffic`)
    t.same(r.responses, { '1xx': 0, '2xx': 5, '3xx': 1, '4xx': 2, '5xx': 1 }, `${u.spec}: responses by class`)
    t.equal(r.failures, 0, 'no failures')
    t.equal(r.inFlight, 0, 'nothing in flight')
    t.equal(r.state, 'up')
    t.equal(r.reason, 'no failures seen')
    t.equal(r.bytesOut, 5, 'the one POST body sent to it')
    t.equal(r.bytesIn, 5 * 'ok a'.length + 2 * 'no'.length + 'boom'.length, 'the response bodies it sent')
    t.same([r.requestBodyBytes, r.responseBodyBytes], [r.bytesOut, r.bytesIn], 'the fields named by what they count agree')
    const decimals = Object.values(r.latencyMs ?? { none: 0.1234 }).map(v => String(v).split('.')[1]?.length ?? 0)
    t.ok(
      decimals.every(d => d <= 3),
      `${u.spec}: latencyMs to the microsecond (${JSON.stringify(r.latencyMs)})`,
    )
    t.equal(r.lastCheck, null, 'no active checks')
    const lat = r.latencyMs as NonNullable<UpstreamStatus['latencyMs']>
    t.ok(lat.p50 > 0 && lat.p50 <= lat.p95 && lat.p95 <= lat.p99, `${u.spec}: p50 ${lat.p50} <= p95 ${lat.p95} <= p99 ${lat.p99}`)
    t.ok(r.rate.reduce((x, y) => x + y, 0) <= 9, 'the per-second series (whole seconds only) never counts more than there were')
  }

  const m = await metrics(admin)
  t.equal(m.types.get('switchyard_requests_total'), 'counter')
  t.equal(m.types.get('switchyard_upstream_response_seconds'), 'histogram')
  t.equal(m.types.get('switchyard_upstream_up'), 'gauge')
  for (const u of [a, b]) {
    const req = (method: string, code_class: string) => valueOf(m, 'switchyard_requests_total', { upstream: u.spec, method, code_class })
    t.equal(req('GET', '2xx'), 5, `${u.spec}: 5 GET 2xx`)
    t.equal(req('GET', '3xx'), 1, `${u.spec}: 1 GET 3xx`)
    t.equal(req('GET', '4xx'), 2, `${u.spec}: 2 GET 4xx`)
    t.equal(req('POST', '5xx'), 1, `${u.spec}: 1 POST 5xx`)
    t.equal(req('POST', '2xx'), undefined, 'no sample for what never happened')
    t.equal(valueOf(m, 'switchyard_upstream_response_seconds_count', { upstream: u.spec }), 9, 'each response timed once')
    t.equal(valueOf(m, 'switchyard_upstream_response_seconds_bucket', { upstream: u.spec, le: '+Inf' }), 9)
    t.equal(valueOf(m, 'switchyard_upstream_in_flight', { upstream: u.spec }), 0)
    t.equal(valueOf(m, 'switchyard_upstream_up', { upstream: u.spec }), 1)
    t.equal(valueOf(m, 'switchyard_retries_total', { upstream: u.spec }), 0)
    t.equal(valueOf(m, 'switchyard_upstream_bytes_total', { upstream: u.spec, direction: 'out' }), 5)
    for (const kind of ['connect', 'timeout', 'reset', 'invalid']) {
      t.equal(valueOf(m, 'switchyard_upstream_failures_total', { upstream: u.spec, kind }), 0, `no ${kind} failures`)
    }
  }
  const total = m.samples.filter(x => x.name === 'switchyard_requests_total').reduce((x, y) => x + y.value, 0)
  t.equal(total, 18, 'the requests counter sums to the 18 requests')
  t.ok(valueOf(m, 'process_cpu_user_seconds_total') !== undefined, "Node's default process metrics are there")

  // Open connections: wait for the fetches' to close, then hold one open.
  const until = async (want: number) => {
    for (let i = 0; i < 200 && (await status(admin)).connections.open !== want; i++) await new Promise(r => setTimeout(r, 10))
  }
  await until(0)
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  await until(1)
  t.equal(valueOf(await metrics(admin), 'switchyard_connections_open'), 1, 'one client connection open')
  socket.destroy()
  await until(0)
  t.equal(valueOf(await metrics(admin), 'switchyard_connections_open'), 0, 'and none once it closed')
})

t.test('failures by kind, retries, and requests no upstream answered', async t => {
  const dead = await closedPort()
  const good = await startUpstream(t, 'good')
  // No response at all: the response timeout.
  const silent = await startRawUpstream(t, () => {})
  // A reset once the request is in.
  const resetting = await startRawUpstream(t, socket => socket.resetAndDestroy())
  // Not HTTP.
  const garbage = await startRawUpstream(t, socket => socket.end('SMTP ready\r\n\r\n'))
  // A head promising 100 bytes, then 10 and the end: a truncated response.
  const short = await startRawUpstream(t, socket => socket.end('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789'))

  // The dead one first: the request is refused there, retried on the good one.
  const lb = await startBalancer(t, [dead, good.spec], { timeout: 300 })
  const admin = await startAdmin(t, lb.balancer)
  t.equal((await fetchText(lb.port)).status, 200, 'refused, then served by the next upstream')
  const one = async (spec: string, expect: number | 'cut') => {
    const x = await startBalancer(t, [spec], { timeout: 300 })
    const port = await startAdmin(t, x.balancer)
    const got = await fetchText(x.port).then(
      r => r.status,
      () => 'cut' as const,
    )
    t.equal(got, expect, `${spec}: ${expect}`)
    return { status: await status(port), metrics: await metrics(port) }
  }
  const kinds = {
    timeout: await one(silent.spec, 504),
    reset: await one(resetting.spec, 502),
    invalid: await one(garbage.spec, 502),
    truncated: await one(short.spec, 'cut'),
  }

  const s = await status(admin)
  const d = row(s, dead)
  t.same(d.failuresByKind, { connect: 1, timeout: 0, reset: 0, invalid: 0 }, 'a refused connection is a connect failure')
  t.equal(d.failures, 1)
  t.equal(d.retries, 1, 'and the request went on: one retry, counted where it failed')
  t.equal(d.requests, 0, 'the request is not counted on the upstream that failed it')
  t.equal(d.state, 'down', 'max_fails 1: down')
  t.match(d.reason, /ECONNREFUSED/, 'and why')
  t.equal(row(s, good.spec).requests, 1, 'the good upstream answered it')
  const m = await metrics(admin)
  t.equal(valueOf(m, 'switchyard_retries_total', { upstream: dead }), 1)
  t.equal(valueOf(m, 'switchyard_upstream_failures_total', { upstream: dead, kind: 'connect' }), 1)
  t.equal(valueOf(m, 'switchyard_upstream_up', { upstream: dead }), 0, 'down is 0')
  t.equal(valueOf(m, 'switchyard_upstream_up', { upstream: good.spec }), 1)

  const kindOf = (k: keyof typeof kinds) => kinds[k].status.upstreams[0] as UpstreamStatus
  t.same(kindOf('timeout').failuresByKind, { connect: 0, timeout: 1, reset: 0, invalid: 0 }, 'no answer in time: timeout')
  t.same(kindOf('timeout').responses['5xx'], 1, 'its 504 counts as its 5xx')
  t.same(kindOf('reset').failuresByKind, { connect: 0, timeout: 0, reset: 1, invalid: 0 }, 'a reset: reset')
  t.same(kindOf('invalid').failuresByKind, { connect: 0, timeout: 0, reset: 0, invalid: 1 }, 'not HTTP: invalid')
  t.same(kindOf('truncated').failuresByKind, { connect: 0, timeout: 0, reset: 1, invalid: 0 }, 'a truncated body: reset')
  t.equal(kindOf('truncated').bytesIn, 10, 'the 10 bytes that came')
  t.equal(valueOf(kinds.invalid.metrics, 'switchyard_upstream_failures_total', { upstream: garbage.spec, kind: 'invalid' }), 1)
  t.equal(valueOf(kinds.timeout.metrics, 'switchyard_requests_total', { upstream: silent.spec, method: 'GET', code_class: '5xx' }), 1)

  // Every upstream down: the balancer answers 503 itself.
  const none = await startBalancer(t, [await closedPort(), await closedPort()])
  const nonePort = await startAdmin(t, none.balancer)
  t.equal((await fetchText(none.port)).status, 502, 'both refused: 502')
  t.equal((await fetchText(none.port)).status, 503, 'both down: 503')
  const ns = await status(nonePort)
  t.equal(ns.requests.total, 2)
  t.same(ns.requests.unrouted, { '1xx': 0, '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 1 }, 'the 503 is unrouted')
  const nm = await metrics(nonePort)
  t.equal(valueOf(nm, 'switchyard_requests_total', { upstream: 'none', method: 'GET', code_class: '5xx' }), 1, 'labelled upstream="none"')
  t.equal(
    nm.samples.filter(x => x.name === 'switchyard_requests_total').reduce((x, y) => x + y.value, 0),
    2,
    'two requests in all',
  )
  t.equal(
    nm.samples.filter(x => x.name === 'switchyard_retries_total').reduce((x, y) => x + y.value, 0),
    1,
    'one retry: the first refused, the second tried',
  )
  // A duplicate Host is the balancer's own 400.
  const dup = await rawExchange(none.port, 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')
  t.match(dup, /^HTTP\/1\.1 400 /)
  t.equal((await status(nonePort)).requests.unrouted['4xx'], 1, 'the 400 is counted too')
})

t.test('states: backup, down by the operator, slow start, draining after a reload, and active checks', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const c = await startUpstream(t, 'c')
  const d = await startUpstream(t, 'd')
  const dead = await closedPort()
  let release = (): void => {}
  // Holds /hold until released; answers its health checks.
  const held = await startUpstream(t, 'held', (req, res) => {
    if (req.url === '/hold') release = () => res.end('late')
    else res.end('ok')
  })
  const health = { path: '/', interval: 50, timeout: 200, healthyThreshold: 1, unhealthyThreshold: 1, status: [200, 399] as const }
  const spec = (s: string) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })
  const { balancer, port } = await startBalancer(t, [], {
    upstreams: [
      spec(held.spec),
      { ...spec(a.spec), slowStart: 60_000 },
      { ...spec(b.spec), down: true },
      { ...spec(c.spec), backup: true },
      spec(dead),
    ],
    policy: 'first',
    health,
  })
  const admin = await startAdmin(t, balancer)
  // Wait (bounded) for a round of checks to reach a verdict on each upstream.
  for (let i = 0; i < 200 && (await status(admin)).upstreams.some(u => u.lastCheck === null); i++) await new Promise(r => setTimeout(r, 20))
  const pending = fetchText(port, { path: '/hold' })
  while (!held.seen.some(x => x.url === '/hold')) await new Promise(r => setTimeout(r, 10))
  let s = await status(admin)
  t.equal(row(s, held.spec).inFlight, 1, 'one request in flight on the held upstream')
  t.equal(row(s, b.spec).state, 'down')
  t.equal(row(s, b.spec).reason, 'marked down in the configuration (down)')
  t.equal(row(s, c.spec).state, 'backup')
  t.equal(row(s, c.spec).reason, 'standing by while primaries are up')
  t.equal(row(s, dead).state, 'down')
  t.match(row(s, dead).reason, /^active check failed 1 time: GET \/ -> ECONNREFUSED/, 'down by active checks, and why')
  t.match(row(s, dead).lastCheck, { ok: false, detail: 'GET / -> ECONNREFUSED' }, 'its last check')
  t.match(row(s, held.spec).lastCheck, { ok: true, detail: 'GET / -> 200' })

  // Slow start shows once an upstream has come back: take a down by passive health, and back.
  const ua = balancer.pool.upstreams[1] as Upstream
  ua.recordFailure('test')
  ua.recordSuccess()
  s = await status(admin)
  t.equal(row(s, a.spec).state, 'up')
  t.match(row(s, a.spec).reason, /^slow start: weight 0\.\d\d of 1$/, 'ramping up')
  t.ok(row(s, a.spec).effectiveWeight < 1, 'its effective weight is below its weight')

  // A reload that removes the held upstream: it drains its request.
  balancer.reload({ upstreams: [spec(a.spec), spec(c.spec)], policy: 'first' })
  s = await status(admin)
  t.equal(row(s, held.spec).state, 'draining', 'removed with a request in flight: draining')
  t.equal(row(s, held.spec).reason, 'removed (reload, admin API or DNS); finishing 1 request(s)')
  t.equal(s.upstreams.at(-1)?.id, held.spec, 'listed after the configured ones')
  const m = await metrics(admin)
  t.equal(valueOf(m, 'switchyard_upstream_in_flight', { upstream: held.spec }), 1, 'its in-flight gauge is still there')
  t.equal(valueOf(m, 'switchyard_upstream_up', { upstream: held.spec }), undefined, 'but it is not an upstream any more')
  // Added back while it drains: the same upstream, listed once, its request still counted.
  balancer.reload({ upstreams: [spec(a.spec), spec(c.spec), spec(held.spec)], policy: 'first' })
  s = await status(admin)
  t.same(
    s.upstreams.map(u => u.id),
    [a.spec, c.spec, held.spec],
    'listed once, as configured',
  )
  t.equal(row(s, held.spec).inFlight, 1, 'with its request in flight')
  t.equal(row(s, held.spec).state, 'up')
  balancer.reload({ upstreams: [spec(a.spec), spec(c.spec)], policy: 'first' })
  t.equal(row(await status(admin), held.spec).state, 'draining', 'removed again: draining again')
  release()
  t.equal((await pending).body, 'late', 'the drained request finished')
  s = await status(admin)
  t.notOk(
    s.upstreams.some(u => u.id === held.spec),
    'and then it is gone',
  )
  t.equal(s.requests.total, 1, 'its request still counts in the totals')
  t.equal(s.upstreams.length, 2)
  t.equal(s.policy, 'first')

  // A reload that adds an upstream wires its response-time histogram.
  balancer.reload({ upstreams: [spec(d.spec)] })
  t.equal((await fetchText(port)).body, 'hello from d\n')
  t.equal(
    valueOf(await metrics(admin), 'switchyard_upstream_response_seconds_count', { upstream: d.spec }),
    1,
    'a new upstream is timed too',
  )

  const drained = balancer.drain(5_000)
  t.equal((await status(admin)).draining, true, 'draining shows')
  await drained
})

/** Reads Server-Sent Events from `path` until `count` data messages came. */
function events(port: number, count: number): Promise<{ res: IncomingMessage; messages: StatusSnapshot[]; raw: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', agent: false }, res => {
      let raw = ''
      const messages: StatusSnapshot[] = []
      // The stream ends by a reset when the admin listener closes: that is expected.
      res.on('error', () => {})
      res.setEncoding('utf8')
      res.on('data', (d: string) => {
        raw += d
        const parts = raw.split('\n\n')
        const data = parts.slice(0, -1).filter(p => p.startsWith('data: '))
        if (data.length >= count) {
          messages.push(...data.slice(0, count).map(p => JSON.parse(p.slice(6)) as StatusSnapshot))
          resolve({ res, messages, raw })
        }
      })
    })
    req.on('error', reject)
    req.end()
  })
}

t.test('the admin routes: dashboard, HEAD, 404, 405, events, and a failing source', async t => {
  const a = await startUpstream(t, 'a')
  const { balancer, port } = await startBalancer(t, [a.spec])
  const admin = await startAdmin(t, balancer, 50)

  const page = await fetchText(admin)
  t.equal(page.status, 200)
  t.equal(page.headers['content-type'], 'text/html; charset=utf-8')
  t.equal(page.headers['cache-control'], 'no-store')
  t.match(page.body, `data-upstream="${a.spec}"`, 'the page holds the upstream row, server-rendered')
  const head = await fetchText(admin, { method: 'HEAD', path: '/metrics' })
  t.equal(head.status, 200)
  t.equal(head.body, '', 'HEAD: no body')
  t.match(head.headers['content-type'], /^text\/plain; version=0\.0\.4/, "Prometheus' content type")
  t.equal((await fetchText(admin, { path: '/status.json?pretty=1' })).status, 200, 'a query string is ignored')
  const headEvents = await fetchText(admin, { method: 'HEAD', path: '/events' })
  t.same(
    [headEvents.status, headEvents.headers['content-type'], headEvents.body],
    [200, 'text/event-stream', ''],
    'HEAD /events: the head, and no stream',
  )
  const missing = await fetchText(admin, { path: '/nope' })
  t.equal(missing.status, 404)
  t.match(missing.body, /try \/, \/status\.json, \/metrics or \/events/)
  const post = await fetchText(admin, { method: 'POST', path: '/', body: 'x' })
  t.equal(post.status, 405)
  t.equal(post.headers.allow, 'GET, HEAD')

  // Events: a snapshot at once, then one per interval, following the traffic.
  const first = await events(admin, 1)
  t.equal(first.res.headers['content-type'], 'text/event-stream')
  t.match(first.raw, /^retry: 2000\n\n/, 'the browser is told to retry after 2 s')
  t.equal(first.messages[0]?.requests.total, 0)
  // The last stream gone stops the timer; the next one starts it again.
  first.res.destroy()
  await once(first.res, 'close')
  await fetchText(port)
  const later = await events(admin, 3)
  t.equal(later.messages[2]?.requests.total, 1, 'a later message counts the request')
  t.ok((later.messages[2]?.now as number) > (later.messages[0]?.now as number), 'each message is a fresh snapshot')
  later.res.destroy()

  // Closing the admin listener ends the streams it has.
  const other = createAdmin(balancer, { interval: 50 })
  const otherPort = await listen(t, other)
  const streams = await Promise.all([events(otherPort, 1), events(otherPort, 2)])
  // (once() would reject: a reset stream emits 'error' before 'close'.)
  const ended = Promise.all(streams.map(x => new Promise(resolve => x.res.on('close', resolve))))
  other.close()
  await ended
  t.pass('closing the admin listener ends its event streams')

  // A source that fails answers 500 in one line; the listener lives on.
  const failing: AdminSource = {
    status: () => Promise.reject(new Error('no figures')),
    metrics: () => Promise.reject(new Error('no metrics')),
    contentType: 'text/plain',
  }
  const broken = await listen(t, new AdminServer(failing))
  const r = await fetchText(broken, { path: '/status.json' })
  t.equal(r.status, 500)
  t.equal(r.body, '500 Internal Server Error: no figures\n')
  t.equal((await fetchText(broken, { path: '/metrics' })).status, 500)
})

t.test('counts from workers with different upstreams (a reload between them) add up', async t => {
  const a = await startUpstream(t, 'a')
  const b = await startUpstream(t, 'b')
  const one = await startBalancer(t, [a.spec, b.spec])
  const two = await startBalancer(t, [b.spec])
  await fetchText(one.port)
  await fetchText(one.port)
  await fetchText(two.port)
  const merged = mergeCounts([processCounts(one.balancer), processCounts(two.balancer)])
  t.same(Object.keys(merged.upstreams).sort(), [a.spec, b.spec].sort(), 'every upstream any worker has')
  t.equal(merged.upstreams[a.spec]?.byMethod.GET?.[1], 1, 'a: in the first worker only')
  t.equal(merged.upstreams[b.spec]?.byMethod.GET?.[1], 2, 'b: one request in each worker')
  t.equal(merged.processes.length, 2)
  t.equal(merged.totals.byMethod.GET?.[1], 3, 'three requests in all')
})

interface RawReply {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * Sends `request` as raw bytes to `address`:`port` and resolves with the answer once the server
 * closes the connection, or at the first `data:` message of an event stream (then it hangs up).
 */
function exchange(port: number, request: string, address = '127.0.0.1'): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, address)
    let received = ''
    const done = (): void => {
      const [head = '', ...rest] = received.split('\r\n\r\n')
      const [line = '', ...fields] = head.split('\r\n')
      const headers = Object.fromEntries(fields.map(f => [f.slice(0, f.indexOf(':')).toLowerCase(), f.slice(f.indexOf(':') + 1).trim()]))
      resolve({ status: Number(line.split(' ')[1]), headers, body: rest.join('\r\n\r\n') })
    }
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      received += d
      if (/\r\n\r\n[\s\S]*data: /.test(received)) {
        socket.destroy()
        done()
      }
    })
    socket.on('error', reject)
    socket.on('end', done)
    socket.write(request)
  })
}

const get = (port: number, path: string, host: string | undefined, address?: string, method = 'GET'): Promise<RawReply> =>
  exchange(port, `${method} ${path} HTTP/1.1\r\n${host === undefined ? '' : `Host: ${host}\r\n`}Connection: close\r\n\r\n`, address)

const HOW = 'the admin listener answers only its own names and those given with --admin-allowed-host'

t.test('DNS rebinding: only a Host that names the admin listener is answered, on every path', async t => {
  const a = await startUpstream(t, 'a')
  const { balancer } = await startBalancer(t, [a.spec])
  const admin = createAdmin(balancer, { interval: 50, allowedHosts: ['Dash.Example.', 'pinned.example:9443'] })
  const port = await listen(t, admin)
  const paths = ['/', '/status.json', '/metrics', '/events']

  for (const path of [...paths, '/nope']) {
    const r = await get(port, path, `evil.example:${port}`)
    t.equal(r.status, 421, `${path} for a rebound name: 421`)
    t.equal(
      r.body,
      `421 Misdirected Request: Host "evil.example:${port}" does not name this admin listener; to allow it, add --admin-allowed-host evil.example:${port}\n`,
      `${path}: one line, naming the Host and the flag`,
    )
    t.equal(r.headers['content-type'], 'text/plain; charset=utf-8', `${path}: as text`)
  }
  const post = await get(port, '/', `evil.example:${port}`, undefined, 'POST')
  t.equal(post.status, 421, 'the Host is checked before the method')

  const allowed = [
    `127.0.0.1:${port}`,
    `localhost:${port}`,
    `LOCALHOST.:${port}`,
    `[::1]:${port}`,
    'dash.example',
    `dash.example:${port}`,
    'DASH.EXAMPLE.:1',
    'pinned.example:9443',
  ]
  for (const host of allowed) {
    for (const path of paths) {
      const r = await get(port, path, host)
      t.equal(r.status, 200, `${host} ${path}: 200`)
    }
  }
  const events = await get(port, '/events', `localhost:${port}`)
  t.match(events.body, /data: \{"version":1,/, 'the event stream flows for an allowed Host')

  const refused: [string | undefined, string, string][] = [
    [
      'localhost',
      `Host "localhost" does not name this admin listener; to allow it, add --admin-allowed-host localhost`,
      'no port is port 80',
    ],
    [
      `localhost:${port + 1}`,
      `Host "localhost:${port + 1}" does not name this admin listener; to allow it, add --admin-allowed-host localhost:${port + 1}`,
      'another port',
    ],
    [
      'pinned.example:9444',
      'Host "pinned.example:9444" does not name this admin listener; to allow it, add --admin-allowed-host pinned.example:9444',
      'an allowed name on another port than its own',
    ],
    [
      'www.dash.example',
      'Host "www.dash.example" does not name this admin listener; to allow it, add --admin-allowed-host www.dash.example',
      'a subdomain of an allowed name',
    ],
    [
      `127.0.0.1.evil.example:${port}`,
      `Host "127.0.0.1.evil.example:${port}" does not name this admin listener; to allow it, add --admin-allowed-host 127.0.0.1.evil.example:${port}`,
      'a name that starts like an address',
    ],
    ['', `Host "" is not a host name; ${HOW}`, 'an empty Host'],
    [`user@localhost:${port}`, `Host "user@localhost:${port}" is not a host name; ${HOW}`, 'user info'],
    [undefined, `no Host header; ${HOW}`, 'no Host in HTTP/1.1'],
  ]
  for (const [host, line, why] of refused) {
    const r = await get(port, '/status.json', host)
    t.same([r.status, r.body], [421, `421 Misdirected Request: ${line}\n`], `${why}: 421`)
  }
  const two = await exchange(
    port,
    `GET /status.json HTTP/1.1\r\nHost: localhost:${port}\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`,
  )
  t.same([two.status, two.body], [421, `421 Misdirected Request: 2 Host headers; ${HOW}\n`], 'two Host headers: 421')
  const old = await exchange(port, 'GET /status.json HTTP/1.0\r\n\r\n')
  t.equal(old.status, 200, 'HTTP/1.0 without a Host: answered (it names no other site)')
  const oldEvil = await exchange(port, `GET /status.json HTTP/1.0\r\nHost: evil.example:${port}\r\n\r\n`)
  t.equal(oldEvil.status, 421, 'HTTP/1.0 with a rebound Host: 421')

  // On one kept-alive connection, each request is judged by its own Host.
  const mixed = await exchange(
    port,
    `GET /status.json HTTP/1.1\r\nHost: localhost:${port}\r\n\r\nGET /status.json HTTP/1.1\r\nHost: evil.example:${port}\r\nConnection: close\r\n\r\n`,
  )
  t.match(mixed.body, /HTTP\/1\.1 421 Misdirected Request\r\n/, 'the second request of the connection: 421')
  t.equal(mixed.status, 200, 'the first: 200')

  // A reload's names replace the old ones; a bad one is refused and the old ones stay.
  admin.allowHosts(['other.example'])
  t.equal((await get(port, '/', 'other.example')).status, 200, 'a new name is answered')
  t.equal((await get(port, '/', 'dash.example')).status, 421, 'a dropped one is not')
  t.throws(() => admin.allowHosts(['http://x']), { name: 'ConfigError' }, 'a bad name is refused')
  t.equal((await get(port, '/', 'other.example')).status, 200, 'and the names in force stay')
})

t.test("the listener's own address and its --admin-host, with its port", async t => {
  const a = await startUpstream(t, 'a')
  const { balancer } = await startBalancer(t, [a.spec])
  // 127.0.0.2 is loopback too (all of 127/8 is), and no loopback name.
  const second = new AdminServer(localSource(balancer))
  second.listen(0, '127.0.0.2')
  await once(second, 'listening')
  t.teardown(() => second.close())
  const port = (second.address() as AddressInfo).port
  t.equal((await get(port, '/status.json', `127.0.0.2:${port}`, '127.0.0.2')).status, 200, 'the address the connection came in on')
  t.equal((await get(port, '/status.json', `127.0.0.3:${port}`, '127.0.0.2')).status, 421, 'another address')
  // An IPv6 socket that takes IPv4 sees the address IPv4-mapped; the browser writes it as IPv4.
  const mapped = new AdminServer(localSource(balancer))
  mapped.listen(0, '::ffff:127.0.0.2')
  await once(mapped, 'listening')
  t.teardown(() => mapped.close())
  const mappedPort = (mapped.address() as AddressInfo).port
  t.equal((await get(mappedPort, '/status.json', `127.0.0.2:${mappedPort}`, '127.0.0.2')).status, 200, 'an IPv4-mapped address, as IPv4')

  const named = createAdmin(balancer, { host: 'Admin.Test' })
  const namedPort = await listen(t, named)
  t.equal((await get(namedPort, '/status.json', `admin.test:${namedPort}`)).status, 200, 'the --admin-host name with the port')
  t.equal((await get(namedPort, '/status.json', `admin.test:${namedPort + 1}`)).status, 421, 'with another port: 421')
  t.equal((await get(namedPort, '/status.json', 'admin.test')).status, 421, 'without a port: 421 (it is not 80)')
})

/** `'sha256-…'`, the CSP source for an inline element's text. */
const hashSource = (text: string): string => `'sha256-${createHash('sha256').update(text, 'utf8').digest('base64')}'`

t.test('security headers on every kind of answer; the CSP allows exactly the script and style served', async t => {
  const a = await startUpstream(t, 'a')
  const { balancer } = await startBalancer(t, [a.spec])
  const port = await startAdmin(t, balancer, 50)
  const host = `127.0.0.1:${port}`
  const LOCKED = "default-src 'none'; frame-ancestors 'none'"

  const page = await get(port, '/', host)
  t.equal(page.status, 200)
  const csp = page.headers['content-security-policy'] as string
  const directives = new Map(
    csp.split(';').map(d => {
      const [name = '', ...values] = d.trim().split(/\s+/)
      return [name, values]
    }),
  )
  t.same(directives.get('default-src'), ["'self'"], "default-src 'self'")
  t.same(directives.get('frame-ancestors'), ["'none'"], 'nothing may frame the page')
  t.same(directives.get('connect-src'), ["'self'"], 'the EventSource may reach /events')
  t.notMatch(csp, /unsafe-inline|unsafe-eval|\*/, 'no unsafe sources, no wildcards')
  const scripts = [...page.body.matchAll(/<script>([\s\S]*?)<\/script>/g)].map(m => m[1] as string)
  const styles = [...page.body.matchAll(/<style>([\s\S]*?)<\/style>/g)].map(m => m[1] as string)
  t.same([scripts.length, styles.length], [1, 1], 'one inline script and one inline style')
  t.same(directives.get('script-src'), [hashSource(scripts[0] as string)], 'script-src: the hash of the script served, and nothing else')
  t.same(directives.get('style-src'), [hashSource(styles[0] as string)], 'style-src: the hash of the style served, and nothing else')
  t.notMatch(page.body, /\sstyle=|\son[a-z]+=/i, 'no style or event-handler attributes, which hashes cannot allow')

  const failing: AdminSource = {
    status: () => Promise.reject(new Error('no figures')),
    metrics: () => Promise.reject(new Error('no')),
    contentType: 'text/plain',
  }
  const broken = await listen(t, new AdminServer(failing))
  const answers: [string, Promise<RawReply>, number][] = [
    ['/status.json', get(port, '/status.json', host), 200],
    ['/metrics', get(port, '/metrics', host), 200],
    ['/events', get(port, '/events', host), 200],
    ['HEAD /events', get(port, '/events', host, undefined, 'HEAD'), 200],
    ['404', get(port, '/nope', host), 404],
    ['405', get(port, '/', host, undefined, 'DELETE'), 405],
    ['421', get(port, '/', 'evil.example'), 421],
    ['500', get(broken, '/status.json', `127.0.0.1:${broken}`), 500],
  ]
  for (const [what, reply, status] of [['/', Promise.resolve(page), 200] as const, ...answers]) {
    const r = await reply
    t.equal(r.status, status, `${what}: ${status}`)
    t.equal(r.headers['x-content-type-options'], 'nosniff', `${what}: nosniff`)
    t.equal(r.headers['referrer-policy'], 'no-referrer', `${what}: no-referrer`)
    if (what !== '/') t.equal(r.headers['content-security-policy'], LOCKED, `${what}: a CSP that allows nothing`)
  }
})

t.test('/events with a source that fails: the stream ends, and the listener lives on', async t => {
  const a = await startUpstream(t, 'a')
  const { balancer } = await startBalancer(t, [a.spec])
  const real = localSource(balancer)
  let calls = 0
  // Figures once, then none: the first message goes out, the next tick ends the stream.
  const flaky: AdminSource = { ...real, status: () => (calls++ === 0 ? real.status() : Promise.reject(new Error('worker gone'))) }
  const port = await listen(t, new AdminServer(flaky, { interval: 20 }))
  const r = await fetchText(port, { path: '/events' })
  t.equal(r.status, 200)
  t.match(r.body, /^retry: 2000\n\ndata: \{"version":1,[^\n]*\n\n$/, 'the one message, then the end: the browser retries after 2 s')
  const again = await fetchText(port, { path: '/events' })
  t.equal(again.body, 'retry: 2000\n\n', 'no figures at all: the stream ends at once')
  t.equal((await fetchText(port, { path: '/status.json' })).status, 500, 'and the listener still answers')
})
