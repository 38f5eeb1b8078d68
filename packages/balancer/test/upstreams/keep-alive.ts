import { once } from 'node:events'
import { createServer, request, type Server } from 'node:http'
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net'
import { performance } from 'node:perf_hooks'
import t, { type Test } from 'tap'
import { KeepAliveAgent, hintedLimit } from '../../src/upstreams/keep-alive.js'

/** A deadline only a connection that is never closed reaches. */
const DEADLINE_MS = 30_000

/** Listens on 127.0.0.1, port 0, counting connections; closed at teardown. */
async function upstream(
  t: Test,
  server: Server | ReturnType<typeof createNetServer>,
): Promise<{ port: number; connections: () => number }> {
  let connections = 0
  server.on('connection', () => connections++)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    if ('closeAllConnections' in server) server.closeAllConnections()
    server.close()
  })
  return { port: (server.address() as AddressInfo).port, connections: () => connections }
}

/** A node:http upstream whose idle connections last `keepAliveMs`: Node announces it as `Keep-Alive: timeout=<s>`. */
function nodeUpstream(keepAliveMs: number): Server {
  const server = createServer((_req, res) => res.end('ok'))
  server.keepAliveTimeout = keepAliveMs
  return server
}

interface Fetched {
  socket: Socket
  reused: boolean
  /**
   * `performance.now()` before the request was sent: the connection went idle later, so a close
   * found `ms` after this came less than `ms` after the connection went idle.
   */
  sentAt: number
  headers: Record<string, string | string[] | undefined>
}

/** GET / through `agent`, read to its end. */
function get(agent: KeepAliveAgent, port: number): Promise<Fetched> {
  const sentAt = performance.now()
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent }, res => {
      res.resume()
      res.on('end', () => resolve({ socket: req.socket as Socket, reused: req.reusedSocket, sentAt, headers: res.headers }))
    })
    req.on('error', reject)
    req.end()
  })
}

/** Resolves with the ms from `since` to the socket's close; rejects at the deadline. */
async function closedAfter(socket: Socket, since: number): Promise<number> {
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the idle connection was still open after ${DEADLINE_MS} ms`)), DEADLINE_MS)
  })
  try {
    await Promise.race([socket.destroyed ? Promise.resolve() : once(socket, 'close'), deadline])
  } finally {
    clearTimeout(timer)
  }
  return performance.now() - since
}

t.test('an idle upstream connection is closed once idle for the limit, not before; the upstream sees the close', async t => {
  const server = nodeUpstream(60_000)
  const up = await upstream(t, server)
  const upstreamSideClosed = new Promise<void>(resolve => server.once('connection', (s: Socket) => s.once('close', () => resolve())))
  const agent = new KeepAliveAgent(400)
  t.teardown(() => agent.destroy())
  const r = await get(agent, up.port)
  t.equal(r.headers['keep-alive'], 'timeout=60', 'the upstream allowed 60 s: the agent’s 400 ms is the limit')
  const ms = await closedAfter(r.socket, r.sentAt)
  // Sweeps come every 50 ms (an eighth), and one closes a connection that would pass the limit before the next.
  t.ok(ms >= 350, `closed ${ms.toFixed(0)} ms after the request, at least 350`)
  await upstreamSideClosed
  t.pass('the upstream saw the connection close')
})

t.test('a connection reused before its limit is kept, and idles out afterwards', async t => {
  const up = await upstream(t, nodeUpstream(60_000))
  const agent = new KeepAliveAgent(300)
  t.teardown(() => agent.destroy())
  const first = await get(agent, up.port)
  const second = await get(agent, up.port)
  t.equal(second.reused, true, 'the second request reused the connection')
  t.equal(second.socket, first.socket, 'the same socket')
  t.equal(up.connections(), 1, 'the upstream saw one connection')
  const ms = await closedAfter(second.socket, second.sentAt)
  t.ok(ms >= 300 - 37, `then closed ${ms.toFixed(0)} ms after its last request was sent`)
})

t.test("an upstream's Keep-Alive: timeout=N shortens the limit to N s less one, as Node's agent does", async t => {
  const up = await upstream(t, nodeUpstream(2_000))
  const agent = new KeepAliveAgent(60_000)
  t.teardown(() => agent.destroy())
  const r = await get(agent, up.port)
  t.equal(r.headers['keep-alive'], 'timeout=2')
  // 1000 ms, swept every 125 ms: closed from 875 ms on, long before the agent's own 60 s.
  const ms = await closedAfter(r.socket, r.sentAt)
  t.ok(ms >= 875, `closed ${ms.toFixed(0)} ms after the request, at least 875`)
})

t.test('Keep-Alive: timeout=1 leaves no time to reuse the connection: it is closed at once', async t => {
  const up = await upstream(t, nodeUpstream(1_000))
  const agent = new KeepAliveAgent(60_000)
  t.teardown(() => agent.destroy())
  const first = await get(agent, up.port)
  await closedAfter(first.socket, first.sentAt)
  const second = await get(agent, up.port)
  t.equal(second.reused, false, 'the next request opened a new connection')
  t.equal(up.connections(), 2, 'the upstream saw two')
})

t.test('a Keep-Alive without a timeout, or none at all: the agent’s own limit holds', async t => {
  for (const keepAlive of ['Keep-Alive: max=100\r\n', '']) {
    const raw = createNetServer(socket => {
      let seen = ''
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.toString('latin1')
        while (seen.includes('\r\n\r\n')) {
          seen = seen.slice(seen.indexOf('\r\n\r\n') + 4)
          socket.write(`HTTP/1.1 200 OK\r\nContent-Length: 2\r\n${keepAlive}\r\nok`)
        }
      })
    })
    const up = await upstream(t, raw)
    const agent = new KeepAliveAgent(200)
    t.teardown(() => agent.destroy())
    const first = await get(agent, up.port)
    const second = await get(agent, up.port)
    t.equal(second.reused, true, `${JSON.stringify(keepAlive)}: reused`)
    const ms = await closedAfter(second.socket, second.sentAt)
    t.ok(ms >= 200 - 25, `${JSON.stringify(keepAlive)}: closed ${ms.toFixed(0)} ms after the request, at least 175`)
    t.equal(first.socket, second.socket)
  }
})

t.test('hintedLimit: a Keep-Alive timeout less Node’s second, the same for a value seen before and past the memo’s bound', async t => {
  t.equal(hintedLimit('timeout=5'), 4000, 'timeout=5: 4 s')
  t.equal(hintedLimit('timeout=5'), 4000, 'and again, from the memo')
  t.equal(hintedLimit('timeout=5, max=100'), 4000, 'with max after it')
  t.equal(hintedLimit('timeout=1'), 0, 'timeout=1: nothing left, not kept')
  t.ok(Number.isNaN(hintedLimit('max=100')), 'no timeout: no limit')
  // More distinct values than the memo keeps: each is still read right.
  const wrong: string[] = []
  for (let s = 2; s < 200; s++) if (hintedLimit(`timeout=${s}`) !== s * 1000 - 1000) wrong.push(`timeout=${s}`)
  for (let s = 2; s < 200; s++) if (hintedLimit(`timeout=${s}`) !== s * 1000 - 1000) wrong.push(`timeout=${s} again`)
  t.same(wrong, [], '198 distinct values, twice each')
})
