// The upstream routes' HTTP side on a real server and real sockets: which method each path
// takes, the gate before the body, bodies too large, not JSON or cut off, ids URL-encoded or not.
// The control behind them is a small in-memory one; what changes do to a real balancer is
// tested end to end in test/runtime-*.ts.
import { once } from 'node:events'
import { createServer } from 'node:http'
import { connect, type AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { AdminAuth } from '../../src/admin/auth.js'
import { MAX_BODY, routeUpstreams, type Outcome, type UpstreamControl } from '../../src/admin/upstreams-api.js'
import type { AdminState } from '../../src/upstreams/admin-state.js'
import { fetchText } from '../fixtures/servers.js'

const TOKEN = 'abcdefghijklmnopqrstuvwxyz012345'
const bearer = { authorization: `Bearer ${TOKEN}` }

interface Row {
  id: string
  adminState: AdminState
}

/** Upstreams in a list: enough to see which call reached the control, with what. */
class Rows implements UpstreamControl<Row> {
  rows: Row[] = [{ id: '127.0.0.1:5000', adminState: 'ready' }]
  calls: string[] = []
  list(): Promise<Row[]> {
    return Promise.resolve(this.rows)
  }
  #find(id: string): Outcome<Row> {
    const row = this.rows.find(r => r.id === id)
    return row === undefined ? { ok: false, status: 404, message: `404 Not Found: no upstream ${id}` } : { ok: true, upstream: row }
  }
  setState(id: string, state: AdminState): Promise<Outcome<Row>> {
    this.calls.push(`state ${id} ${state}`)
    const o = this.#find(id)
    if (o.ok) o.upstream.adminState = state
    return Promise.resolve(o)
  }
  add(spec: unknown): Promise<Outcome<Row>> {
    this.calls.push(`add ${JSON.stringify(spec)}`)
    if (typeof spec !== 'string') return Promise.resolve({ ok: false, status: 400, message: '400 Bad Request: not a line' })
    const row: Row = { id: spec, adminState: 'ready' }
    this.rows.push(row)
    return Promise.resolve({ ok: true, upstream: row })
  }
  remove(id: string): Promise<Outcome<Row>> {
    this.calls.push(`remove ${id}`)
    return Promise.resolve(this.#find(id))
  }
}

/** A real server that answers /upstreams with the routes, anything else with 404, a throw with 500. */
async function serve(t: Test, token: string | null = TOKEN) {
  const control = new Rows()
  const logs: string[] = []
  const auth = new AdminAuth(token ?? undefined, line => logs.push(line))
  let failed: (err: Error) => void = () => {}
  const failure = new Promise<Error>(resolve => (failed = resolve))
  const server = createServer((req, res) => {
    routeUpstreams(req, (req.url as string).split('?')[0] as string, control, auth).then(
      a => {
        if (a === undefined) return void res.writeHead(404).end('not mine\n')
        const json = typeof a.body !== 'string'
        res.writeHead(a.status, { 'content-type': json ? 'application/json' : 'text/plain', ...a.headers })
        res.end(json ? JSON.stringify(a.body) : a.body)
      },
      (err: Error) => {
        failed(err)
        res.writeHead(500).end(`500 ${err.message}\n`)
      },
    )
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>(resolve => server.close(() => resolve())))
  return { port: (server.address() as AddressInfo).port, control, logs, server, failure }
}

t.test('reads are open; each path takes its methods', async t => {
  const { port, control } = await serve(t)
  const list = await fetchText(port, { path: '/upstreams' })
  t.same([list.status, JSON.parse(list.body)], [200, control.rows], 'GET /upstreams lists them')
  t.equal((await fetchText(port, { path: '/upstreams/' })).status, 200, 'a trailing slash too')
  t.equal((await fetchText(port, { method: 'HEAD', path: '/upstreams' })).status, 200, 'HEAD')
  const cases: [string, string, string][] = [
    ['PUT', '/upstreams', 'GET, HEAD, POST'],
    ['GET', '/upstreams/127.0.0.1%3A5000', 'DELETE'],
    ['POST', '/upstreams/127.0.0.1%3A5000', 'DELETE'],
    ['GET', '/upstreams/127.0.0.1%3A5000/state', 'POST'],
    ['DELETE', '/upstreams/127.0.0.1%3A5000/state', 'POST'],
  ]
  for (const [method, path, allow] of cases) {
    const r = await fetchText(port, { method, path, headers: bearer })
    t.same([r.status, r.headers.allow, r.body], [405, allow, `405 Method Not Allowed: ${path} takes ${allow}\n`], `${method} ${path}`)
  }
  t.equal((await fetchText(port, { path: '/upstreamsx' })).body, 'not mine\n', 'another path is not the routes')
  t.equal((await fetchText(port, { path: '/upstreams/a/b/c' })).body, 'not mine\n', 'nor a deeper one')
  t.same(control.calls, [], 'nothing reached the control')
})

t.test('every state-changing call passes the gate first', async t => {
  const { port, control, logs } = await serve(t)
  const calls: [string, string][] = [
    ['POST', '/upstreams/127.0.0.1%3A5000/state'],
    ['POST', '/upstreams'],
    ['DELETE', '/upstreams/127.0.0.1%3A5000'],
  ]
  for (const [method, path] of calls) {
    const body = method === 'POST' ? '{"state":"drain"}' : undefined
    const none = await fetchText(port, { method, path, body })
    t.same(
      [none.status, none.headers['www-authenticate']],
      [401, 'Bearer realm="switchyard-admin"'],
      `${method} ${path} without a token: 401`,
    )
    const wrong = await fetchText(port, { method, path, body, headers: { authorization: `Bearer ${TOKEN}x` } })
    t.equal(wrong.status, 401, `${method} ${path} with a wrong token: 401`)
  }
  t.same(control.calls, [], 'nothing reached the control')
  t.equal(logs.length, 1, 'one log line for the address this minute')
  const off = await serve(t, null)
  const r = await fetchText(off.port, { method: 'POST', path: '/upstreams', body: '"x"', headers: bearer })
  t.same(
    [r.status, r.body.split(';')[0]],
    [403, '403 Forbidden: no admin token is set, so nothing may be changed'],
    'no token configured: 403',
  )
  t.equal((await fetchText(off.port, { path: '/upstreams' })).status, 200, 'reads still work')
})

t.test('bodies: the state, an upstream line or object; bad ones get 400 or 413', async t => {
  const { port, control } = await serve(t)
  const post = (path: string, body: string | Buffer) => fetchText(port, { method: 'POST', path, body, headers: bearer })
  const drained = await post('/upstreams/127.0.0.1%3A5000/state', '{"state":"drain"}')
  t.same(
    [drained.status, JSON.parse(drained.body)],
    [200, { id: '127.0.0.1:5000', adminState: 'drain' }],
    'the id URL-encoded: 200 with the new object',
  )
  const raw = await post('/upstreams/127.0.0.1:5000/state', '{"state":"ready"}')
  t.equal(raw.status, 200, 'the id as it is')
  t.equal((await post('/upstreams/127.0.0.1%3A5999/state', '{"state":"ready"}')).status, 404, 'an unknown id: the control says 404')
  for (const body of ['{"state":"up"}', '{}', '"drain"', '[]', 'null']) {
    const r = await post('/upstreams/127.0.0.1%3A5000/state', body)
    t.equal(r.status, 400, `${body}: 400`)
    t.match(
      r.body,
      /^400 Bad Request: state: .* is not one of ready, drain, maint; send \{"state": "drain"\}, "maint" or "ready"\n$/,
      'saying what to send',
    )
  }
  const notJson = await post('/upstreams', 'upstream=127.0.0.1:5001')
  t.match([notJson.status, notJson.body], [400, /^400 Bad Request: the body is not JSON \(/], 'not JSON')
  const bad = await fetchText(port, { method: 'DELETE', path: '/upstreams/%E0%A4%A', headers: bearer })
  t.same([bad.status, bad.body], [400, '400 Bad Request: "%E0%A4%A" is not a URL-encoded host:port\n'], 'a broken encoding')
  const big = await post('/upstreams', Buffer.alloc(MAX_BODY + 1, 0x20))
  t.same([big.status, big.headers.connection], [413, 'close'], 'a body over the limit: 413, and the connection closes')
  const added = await post('/upstreams', '{"upstream":"127.0.0.1:5001"}')
  t.same([added.status, JSON.parse(added.body)], [201, { id: '127.0.0.1:5001', adminState: 'ready' }], '{"upstream": line}: 201')
  const object = await post('/upstreams', '{"address":"127.0.0.1:5002","weight":2}')
  t.equal(object.status, 400, 'an object goes to the control as it is (this one refuses objects)')
  const removed = await fetchText(port, { method: 'DELETE', path: '/upstreams/127.0.0.1%3A5001', headers: bearer })
  t.same([removed.status, JSON.parse(removed.body).id], [202, '127.0.0.1:5001'], 'DELETE: 202 with the object')
  t.same(
    control.calls,
    [
      'state 127.0.0.1:5000 drain',
      'state 127.0.0.1:5000 ready',
      'state 127.0.0.1:5999 ready',
      'add "127.0.0.1:5001"',
      'add {"address":"127.0.0.1:5002","weight":2}',
      'remove 127.0.0.1:5001',
    ],
    'the control got exactly the valid calls',
  )
})

t.test('a client that goes away in the middle of its body gets nothing, and nothing is changed', async t => {
  const { port, control, server, failure } = await serve(t)
  const closed = once(server, 'request')
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write(`POST /upstreams HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 100\r\n\r\n{"upstream":`)
  const [req] = (await closed) as [import('node:http').IncomingMessage]
  t.equal(req.method, 'POST', 'the request arrived')
  socket.destroy()
  // The route's promise rejects with the reading error, for the listener to end the exchange.
  const err = await failure
  t.equal((err as NodeJS.ErrnoException).code, 'ECONNRESET', 'the cut body is an error, not an empty body')
  t.same(control.calls, [], 'the control never saw the call')
})
