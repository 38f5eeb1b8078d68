// Opens many keep-alive client connections to a proxy and keeps them idle, for the memory phase of
// `npm run bench`. Each connection carries one complete `GET / HTTP/1.1` (keep-alive) and reads
// its answer, so the proxy holds what a real idle client costs it (a parsed, finished exchange and
// a socket in its keep-alive wait), not just an accepted socket that never spoke.
//
//   node scripts/bench/idle-clients.mjs PORT COUNT      (with an IPC channel)
//
// Sends {opened, failed, firstError} once all are up; on the message 'close' destroys them and
// sends {closed}. Exits when the channel closes.

import { connect } from 'node:net'

const BATCH = 250
const PER_CONNECTION_MS = 10_000
const REQUEST = 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n'
const BODY = 'Hello, World!\n'

const [port, count] = process.argv.slice(2).map(Number)
const open = new Set()
let closedByServer = 0
let failed = 0
let firstError

/** One connection, one request, its whole answer; resolves true when it is then idle and open. */
function one() {
  return new Promise(resolve => {
    const socket = connect({ host: '127.0.0.1', port })
    let text = ''
    let settled = false
    const done = ok => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (!ok) {
        open.delete(socket)
        socket.destroy()
      }
      resolve(ok)
    }
    const timer = setTimeout(() => {
      firstError ??= `no complete answer in ${PER_CONNECTION_MS / 1000}s`
      done(false)
    }, PER_CONNECTION_MS)
    socket.setEncoding('latin1')
    socket.on('connect', () => socket.write(REQUEST))
    socket.on('data', chunk => {
      text += chunk
      if (!text.endsWith(BODY)) return
      if (!text.startsWith('HTTP/1.1 200')) firstError ??= `answer ${JSON.stringify(text.split('\r\n')[0])}`
      done(text.startsWith('HTTP/1.1 200'))
    })
    socket.on('error', err => {
      firstError ??= err.code ?? err.message
      done(false)
    })
    socket.on('close', () => {
      if (open.delete(socket)) closedByServer++
      done(false)
    })
    open.add(socket)
  })
}

for (let started = 0; started < count; started += BATCH) {
  const results = await Promise.all(Array.from({ length: Math.min(BATCH, count - started) }, one))
  failed += results.filter(ok => !ok).length
}
process.send({ opened: open.size, failed, closedByServer, firstError })
process.on('message', m => {
  if (m !== 'close') return
  const stillOpen = open.size
  for (const socket of open) socket.destroy()
  open.clear()
  process.send({ closed: stillOpen, closedByServer })
})
process.on('disconnect', () => process.exit(0))
