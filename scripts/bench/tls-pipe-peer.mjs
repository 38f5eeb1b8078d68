// The TLS floor for `npm run bench`: Node's own `https` or `http2` server piped into node:http's
// client with a keep-alive agent, round-robin over the targets, no library. It is what any Node
// proxy pays for TLS (and HTTP/2 framing) on top of pipe-peer.mjs's HTTP costs, the issue's
// "bare https / http2 server piped to the same upstreams". For h2 it does the least a proxy must:
// pseudo-headers out of the upstream request (`:authority` as Host), connection headers out of the
// response (Node throws on them). Like pipe-peer.mjs, a floor to measure against, not a peer.
// `h2` uses Node's compat API (a request and a response object per stream, as most Node servers
// do); `h2-stream` the core API, the stream alone: the lower floor of the two.
//
//   node scripts/bench/tls-pipe-peer.mjs https|h2|h2-stream PORT CERT KEY http://127.0.0.1:A http://127.0.0.1:B

import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { createServer as createHttpsServer } from 'node:https'
import { createSecureServer } from 'node:http2'

const [mode, port, cert, key, ...targets] = process.argv.slice(2)
if (!['https', 'h2', 'h2-stream'].includes(mode) || !/^\d+$/.test(port ?? '') || key === undefined || targets.length === 0) {
  process.stderr.write('usage: node tls-pipe-peer.mjs https|h2|h2-stream PORT CERT KEY TARGET...\n')
  process.exit(1)
}
const tls = { cert: readFileSync(cert), key: readFileSync(key) }
const upstreams = targets.map(t => new URL(t)).map(u => ({ hostname: u.hostname, port: Number(u.port) }))
const agent = new Agent({ keepAlive: true, scheduling: 'lifo' })
const CONNECTION = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade'])
let next = 0

function forward(req, res, headers, h2) {
  const { hostname, port } = upstreams[next]
  next = (next + 1) % upstreams.length
  const out = request({ hostname, port, method: req.method, path: req.url, headers, agent }, up => {
    if (h2) {
      const kept = {}
      for (const name in up.headers) if (!CONNECTION.has(name)) kept[name] = up.headers[name]
      res.writeHead(up.statusCode, kept)
    } else {
      res.writeHead(up.statusCode, up.rawHeaders)
    }
    up.pipe(res)
  })
  out.on('error', err => {
    if (res.headersSent) return void res.destroy()
    res.writeHead(502, { 'content-type': 'text/plain' })
    res.end(`bad gateway: ${err.code ?? err.message}\n`)
  })
  req.pipe(out)
}

/**
 * The same over Node's core HTTP/2 API: the stream is the request body and the response, with no
 * compat request and response objects around it (`h2-stream`).
 */
function forwardStream(stream, h2) {
  const { hostname, port } = upstreams[next]
  next = (next + 1) % upstreams.length
  const headers = {}
  for (const name in h2) if (name[0] !== ':') headers[name] = h2[name]
  headers.host = h2[':authority']
  const out = request({ hostname, port, method: h2[':method'], path: h2[':path'], headers, agent }, up => {
    // The client may have gone (h2load closes its connections at the end of a run): respond() would throw.
    if (stream.destroyed) return void out.destroy()
    const kept = { ':status': up.statusCode }
    for (const name in up.headers) if (!CONNECTION.has(name)) kept[name] = up.headers[name]
    stream.respond(kept)
    up.pipe(stream)
  })
  out.on('error', err => {
    if (stream.headersSent || stream.destroyed) return void stream.destroy()
    stream.respond({ ':status': 502, 'content-type': 'text/plain' })
    stream.end(`bad gateway: ${err.code ?? err.message}\n`)
  })
  stream.on('error', () => out.destroy())
  if (stream.endAfterHeaders) out.end()
  else stream.pipe(out)
}

const server =
  mode === 'h2-stream'
    ? // A 'request' listener (for the readiness check over HTTPS) makes Node add its compat layer
      // to 'stream' as well; that listener is taken off again.
      createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => forward(req, res, req.headers, false))
        .removeAllListeners('stream')
        .on('stream', forwardStream)
    : mode === 'https'
      ? createHttpsServer(tls, (req, res) => forward(req, res, req.headers, false))
      : // allowHTTP1 only so that the bench's readiness check (an HTTPS GET) is answered; the
        // measured h2 requests never take that path.
        createSecureServer({ ...tls, allowHTTP1: true }, (req, res) => {
          if (req.httpVersionMajor === 1) return forward(req, res, req.headers, false)
          const headers = {}
          for (const name in req.headers) if (name[0] !== ':') headers[name] = req.headers[name]
          headers.host = req.headers[':authority']
          forward(req, res, headers, true)
        })
server.listen(Number(port), '127.0.0.1', () => process.stdout.write(`${mode} pipe peer listening on https://127.0.0.1:${port}\n`))
