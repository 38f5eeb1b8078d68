// The floor for any cache in Node, for `npm run bench`: a bare node:http server that answers every
// request from a Map, with the stored status, headers and body and a computed Age, as the node:http
// pipe is the floor for forwarding. A URL it has not seen is fetched once from the first target and
// kept for good; nothing expires, nothing is checked, no header is read. It is what a Node cache
// hit cannot go below, not a cache to copy.
//
//   node scripts/bench/memory-hit-peer.mjs PORT http://127.0.0.1:A [...]

import { Agent, createServer, request } from 'node:http'

const [port, target] = process.argv.slice(2)
if (!/^\d+$/.test(port ?? '') || target === undefined) {
  process.stderr.write('usage: node memory-hit-peer.mjs PORT TARGET...\n')
  process.exit(1)
}
const { hostname, port: targetPort } = new URL(target)
const agent = new Agent({ keepAlive: true })
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection'])
/** url → { status, headers (flat, as stored), body, time (ms) } */
const store = new Map()

createServer((req, res) => {
  const hit = store.get(req.url)
  if (hit !== undefined) {
    const headers = hit.headers.slice()
    headers.push('Age', String(Math.floor((Date.now() - hit.time) / 1000)))
    res.writeHead(hit.status, headers)
    res.end(hit.body)
    return
  }
  request({ hostname, port: Number(targetPort), path: req.url, agent }, up => {
    const chunks = []
    up.on('data', c => chunks.push(c))
    up.on('end', () => {
      const headers = []
      for (let i = 0; i < up.rawHeaders.length; i += 2)
        if (!HOP.has(up.rawHeaders[i].toLowerCase())) headers.push(up.rawHeaders[i], up.rawHeaders[i + 1])
      const body = Buffer.concat(chunks)
      store.set(req.url, { status: up.statusCode, headers, body, time: Date.now() })
      res.writeHead(up.statusCode, headers)
      res.end(body)
    })
  })
    .on('error', err => {
      res.writeHead(502, { 'content-type': 'text/plain' })
      res.end(`bad gateway: ${err.code ?? err.message}\n`)
    })
    .end()
}).listen(Number(port), '127.0.0.1', () => process.stdout.write(`memory hit peer listening on http://127.0.0.1:${port}\n`))
