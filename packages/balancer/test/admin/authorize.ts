// AdminServer.authorize: the gate as another state-changing route adopts it (the edge cache's purge, say), on a real server.
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { AdminAuth } from '../../src/admin/auth.js'
import { AdminServer, type AdminSource } from '../../src/admin/server.js'
import { fetchText } from '../fixtures/servers.js'

const TOKEN = 'authorize-test-token-0123456789'
const source: AdminSource = {
  status: () => Promise.reject(new Error('unused')),
  metrics: () => Promise.resolve(''),
  contentType: 'text/plain',
}

t.test('a route that starts with authorize() answers 401 / 403 itself, and runs only with the token', async t => {
  for (const [token, status] of [
    [undefined, 403],
    [TOKEN, 401],
  ] as const) {
    const admin = new AdminServer(source, { auth: new AdminAuth(token) })
    let ran = 0
    const server = createServer((req, res) => {
      if (!admin.authorize(req, res)) return
      ran++
      res.end('purged\n')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    t.teardown(() => server.close())
    const port = (server.address() as AddressInfo).port
    const refused = await fetchText(port, { method: 'DELETE', path: '/cache' })
    t.equal(refused.status, status, `token ${token === undefined ? 'not set' : 'set'}, none sent: ${status}`)
    t.match(refused.headers['content-type'], /^text\/plain/, 'a text answer')
    const right = await fetchText(port, { method: 'DELETE', path: '/cache', headers: { authorization: `Bearer ${TOKEN}` } })
    t.same([right.status, ran], token === undefined ? [403, 0] : [200, 1], 'the right token runs the route, when one is set')
  }
  t.equal(new AdminServer(source).auth.configured, false, 'without auth: no token, every change refused')
})
