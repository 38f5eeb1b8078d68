// The stock Node peer for `npm run bench`: http-proxy with a keep-alive agent, round-robin over the
// targets, and nothing else. What Switchyard adds on top of it (health, retries, metrics, logs) is
// the difference between the two rows.
//
//   node scripts/bench/http-proxy-peer.mjs PORT http://127.0.0.1:A http://127.0.0.1:B

import { Agent, createServer } from 'node:http'
import httpProxy from 'http-proxy'

const [port, ...targets] = process.argv.slice(2)
if (!/^\d+$/.test(port ?? '') || targets.length === 0) {
  process.stderr.write('usage: node http-proxy-peer.mjs PORT TARGET...\n')
  process.exit(1)
}
const agent = new Agent({ keepAlive: true })
const proxy = httpProxy.createProxyServer({})
// Without an error listener http-proxy rethrows and the process dies; a 502 is what a peer would do.
proxy.on('error', (err, req, res) => {
  if (typeof res.writeHead !== 'function' || res.headersSent) {
    res.destroy()
    return
  }
  res.writeHead(502, { 'content-type': 'text/plain' })
  res.end(`bad gateway: ${err.code ?? err.message}\n`)
})
let next = 0
createServer((req, res) => {
  const target = targets[next]
  next = (next + 1) % targets.length
  proxy.web(req, res, { target, agent })
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`http-proxy listening on http://127.0.0.1:${port}\n`))
