// The leanest Node peer for `npm run bench`: node:http's server piped into node:http's client with
// a keep-alive agent, round-robin over the targets, no library. It is what any Node proxy pays for
// Node's HTTP parser, sockets and streams; the "hand-written node:http pipe". It does none
// of a proxy's duties (no hop-by-hop filtering, no X-Forwarded-*, no retries, no timeouts), so it
// is a floor to measure against, not a peer to copy.
//
//   node scripts/bench/pipe-peer.mjs PORT http://127.0.0.1:A http://127.0.0.1:B

import { Agent, createServer, request } from 'node:http'

const [port, ...targets] = process.argv.slice(2)
if (!/^\d+$/.test(port ?? '') || targets.length === 0) {
  process.stderr.write('usage: node pipe-peer.mjs PORT TARGET...\n')
  process.exit(1)
}
const upstreams = targets.map(t => new URL(t)).map(u => ({ hostname: u.hostname, port: Number(u.port) }))
const agent = new Agent({ keepAlive: true, scheduling: 'lifo' })
let next = 0
createServer((req, res) => {
  const { hostname, port } = upstreams[next]
  next = (next + 1) % upstreams.length
  const out = request({ hostname, port, method: req.method, path: req.url, headers: req.headers, agent }, up => {
    res.writeHead(up.statusCode, up.rawHeaders)
    up.pipe(res)
  })
  out.on('error', err => {
    if (res.headersSent) return void res.destroy()
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end(`bad gateway: ${err.code ?? err.message}\n`)
  })
  req.pipe(out)
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`pipe peer listening on http://127.0.0.1:${port}\n`))
