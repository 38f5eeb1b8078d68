// The engine seam on its own: what send() and upgrade() promise their sinks, with real servers on both sides.
import { once } from 'node:events'
import { Agent, createServer, type ClientRequest, type IncomingMessage, type ServerResponse } from 'node:http'
import { connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { WebSocket } from 'ws'
import { createEngine, outgoingOptions, type Target, type UpgradeSink } from '../../src/forward/engine.js'
import type { Headers } from '../../src/forward/headers.js'
import { serve, startRawUpstream } from '../fixtures/servers.js'
import { handshake, startWsUpstream } from '../fixtures/websockets.js'

const targetOf = (spec: string): Target => {
  const [host, port] = spec.split(':') as [string, string]
  return { protocol: 'http:', host, hostname: host, port: Number(port) }
}

/** Sends raw bytes and resolves with all that comes back before the connection closes. */
function exchange(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (d: string) => (received += d))
    socket.on('error', reject)
    socket.on('close', () => resolve(received))
    socket.write(data)
  })
}

/**
 * A server that sends each request it gets to `spec` through an engine of its own, with `headers`: the sink
 * ends the upstream request at once, and `answer` answers the client from the upstream's response.
 */
function sendingServer(
  t: Test,
  spec: string,
  agent: Agent,
  headers: Headers,
  answer: (upstreamRes: IncomingMessage, res: ServerResponse) => void,
): Promise<number> {
  const engine = createEngine()
  return serve(
    t,
    createServer((req, res) => {
      engine.send(req, res, targetOf(spec), agent, headers, {
        requestBuilt(out: ClientRequest) {
          out.on('response', (r: IncomingMessage) => answer(r, res))
          out.end()
        },
      })
    }),
  )
}

t.test('send: the sink gets the request at once; the upstream gets the path byte for byte and the given headers only', async t => {
  const upstream = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
  })
  const engine = createEngine()
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const seen = { synchronous: false, sameHeaders: false, headersAfter: '' }
  const port = await serve(
    t,
    createServer((req, res) => {
      let returned = false
      const own = req.headers
      engine.send(
        req,
        res,
        targetOf(upstream.spec),
        agent,
        { host: 'upstream.example', 'x-for-upstream': '1' },
        {
          requestBuilt(out: ClientRequest) {
            seen.synchronous = !returned
            out.on('response', (r: IncomingMessage) => r.pipe(res.writeHead(r.statusCode as number)))
            out.end()
          },
        },
      )
      returned = true
      seen.sameHeaders = req.headers === own
      seen.headersAfter = JSON.stringify(req.headers)
    }),
  )
  const reply = await exchange(port, 'GET //a//b?x=1 HTTP/1.1\r\nHost: client.example\r\nX-From-Client: 1\r\nConnection: close\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 200 OK\r\n[^]*\r\nok\r\n0\r\n\r\n$/, 'the answer came back through the sink')
  t.equal(upstream.connections, 1, 'the upstream was reached once')
  t.ok(seen.synchronous, 'requestBuilt is called inside send(), before it returns')
  t.ok(seen.sameHeaders, 'once send() returns, the client request has its own headers back')
  t.match(seen.headersAfter, /"x-from-client":"1"/, 'its own headers, as the client sent them')
})

t.test('send: the options Node copies per request carry no key left undefined', async t => {
  const upstream = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.end('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok')
  })
  const given: Record<string, unknown>[] = []
  /** An agent that notes the options the upstream request hands it. */
  class Noting extends Agent {
    addRequest(req: ClientRequest, options: Record<string, unknown>): void {
      given.push({ ...options })
      ;(Agent.prototype as unknown as { addRequest: (req: ClientRequest, options: object) => void }).addRequest.call(this, req, options)
    }
  }
  const agent = new Noting()
  t.teardown(() => agent.destroy())
  const port = await sendingServer(t, upstream.spec, agent, { host: 'upstream.example' }, (r, res) =>
    r.pipe(res.writeHead(r.statusCode as number)),
  )
  const reply = await exchange(port, 'GET /a HTTP/1.1\r\nHost: client.example\r\nConnection: close\r\n\r\n')
  t.match(reply, /^HTTP\/1\.1 200 OK\r\n[^]*\r\nok/, 'the request went through')
  const options = given[0] ?? {}
  t.same(
    Object.keys(options).filter(key => options[key] === undefined),
    [],
    'http-proxy assigns nine settings as undefined on every request; none reaches Node as a key',
  )
  const { host, port: upstreamPort } = targetOf(upstream.spec)
  t.match(options, { host, port: upstreamPort, method: 'GET' }, 'what is set is there')
})

t.test('the upstream request options: one object per protocol, made once; the nine settings left undefined are never keys', async t => {
  const nine = ['socketPath', 'pfx', 'key', 'passphrase', 'cert', 'ca', 'ciphers', 'secureProtocol', 'localAddress']
  const options = outgoingOptions('http:')
  t.equal(outgoingOptions('http:'), options, 'every request over http fills in the same object')
  t.not(outgoingOptions('https:'), options, 'and every request over https another')
  for (const protocol of ['http:', 'https:'] as const) {
    const o = outgoingOptions(protocol)
    // As http-proxy's setupOutgoing assigns them, on every request.
    for (const key of nine) o[key] = undefined
    o.host = 'upstream.example'
    t.same(
      Object.keys({ ...o }).filter(key => nine.includes(key)),
      [],
      `${protocol} assigned undefined, none is a key that a copy takes`,
    )
    t.equal({ ...o }.host, 'upstream.example', `${protocol} what is assigned otherwise is copied as usual`)
  }
})

t.test('send: what the upstream received', async t => {
  let received = ''
  const upstream = await startRawUpstream(t, (socket, data) => {
    received = data
    if (data.includes('\r\n\r\n')) socket.end('HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n')
  })
  const agent = new Agent()
  t.teardown(() => agent.destroy())
  const port = await sendingServer(t, upstream.spec, agent, { host: 'upstream.example', 'x-for-upstream': '1' }, (_r, res) => res.end())
  await exchange(port, 'GET //a//b?x=1 HTTP/1.1\r\nHost: client.example\r\nX-From-Client: 1\r\nConnection: close\r\n\r\n')
  t.match(received, /^GET \/\/a\/\/b\?x=1 HTTP\/1\.1\r\n/, 'the path and query byte for byte, // included')
  t.match(received, /\r\nhost: upstream\.example\r\n/i, 'the Host given')
  t.match(received, /\r\nx-for-upstream: 1\r\n/i, 'the headers given')
  t.notMatch(received, /x-from-client/i, "and none of the client's that were not given")
})

/** A sink that records what the engine told it, in order. */
function recordingSink(
  onEvent: (event: string) => void = () => {},
): UpgradeSink & { events: string[]; res?: IncomingMessage; err?: Error } {
  const sink = {
    events: [] as string[],
    res: undefined as IncomingMessage | undefined,
    err: undefined as Error | undefined,
    requestBuilt(out: ClientRequest) {
      out.setHeader('x-set-by-sink', 'yes')
      sink.events.push('requestBuilt')
      onEvent('requestBuilt')
    },
    upgraded() {
      sink.events.push('upgraded')
      onEvent('upgraded')
    },
    answered(res: IncomingMessage) {
      sink.res = res
      sink.events.push(`answered ${res.statusCode}`)
      onEvent('answered')
    },
    failed(err: Error) {
      sink.err = err
      sink.events.push(`failed ${(err as NodeJS.ErrnoException).code}`)
      onEvent('failed')
    },
  }
  return sink
}

/** A server whose upgrades go through the engine to `spec`, over a connection opened first. */
async function upgrading(t: Test, spec: string, sink: UpgradeSink): Promise<number> {
  const engine = createEngine()
  const server = createServer()
  server.on('upgrade', (req: IncomingMessage, client: Socket) => {
    client.on('error', () => {})
    const conn = connect(targetOf(spec).port, '127.0.0.1')
    conn.on('error', () => {})
    conn.once('connect', () => engine.upgrade(req, client, targetOf(spec), conn, sink))
  })
  return serve(t, server)
}

t.test('upgrade: a 101 is passed on and the frames piped both ways; the sink set headers first', async t => {
  const up = await startWsUpstream(t)
  const sink = recordingSink()
  const port = await upgrading(t, up.spec, sink)
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws//x`)
  t.teardown(() => ws.terminate())
  await once(ws, 'open')
  const echoed = once(ws, 'message') as Promise<[Buffer]>
  ws.send('through the engine')
  t.equal((await echoed)[0].toString(), 'through the engine', 'echoed back through the tunnel')
  t.same(sink.events, ['requestBuilt', 'upgraded'], 'requestBuilt, then upgraded')
  t.equal(up.peers[0]?.req.url, '/ws//x', 'the path byte for byte')
  t.equal(up.peers[0]?.req.headers['x-set-by-sink'], 'yes', 'with the headers the sink set')
})

t.test('upgrade: any other answer goes to the sink, and the engine writes nothing of it', async t => {
  const raw = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 4\r\n\r\nnope')
  })
  let answered: () => void = () => {}
  const done = new Promise<void>(resolve => (answered = resolve))
  const sink = recordingSink(e => e === 'answered' && answered())
  const port = await upgrading(t, raw.spec, sink)
  const client = connect(port, '127.0.0.1')
  let got = ''
  client.setEncoding('latin1')
  client.on('data', (d: string) => (got += d))
  client.write(handshake())
  await done
  t.same(sink.events, ['requestBuilt', 'answered 403'], 'the sink is told of the 403')
  await new Promise(resolve => setImmediate(resolve))
  t.equal(got, '', "http-proxy's own answer was not written: the sink answers")
  client.destroy()
})

t.test('upgrade: an upstream that resets after the handshake request is reported as failed', async t => {
  const raw = await startRawUpstream(t, (socket, received) => {
    if (received.includes('\r\n\r\n')) socket.resetAndDestroy()
  })
  let failed: () => void = () => {}
  const done = new Promise<void>(resolve => (failed = resolve))
  const sink = recordingSink(e => e === 'failed' && failed())
  const port = await upgrading(t, raw.spec, sink)
  const client = connect(port, '127.0.0.1')
  client.on('error', () => {})
  client.write(handshake())
  await done
  t.same(sink.events, ['requestBuilt', 'failed ECONNRESET'], 'the sink is told, with the error')
  await once(client, 'close')
  t.pass('and the engine ended the client socket')
})
