// The private redis-server of `npm start -- --redis`, run through this small node wrapper so that
// it is supervised like every other child of the launcher (scripts/start.mjs):
// - redis-server runs in a process group of its own, so a terminal's Ctrl-C reaches it only
//   through the launcher, which stops it last (the backends and the worker would otherwise log
//   an outage on their way down);
// - this wrapper has the launcher's IPC channel: when it closes (the launcher died, even by
//   SIGKILL), redis-server is stopped too, and no orphan keeps the port;
// - SIGTERM and SIGINT are passed on; the wrapper exits as redis-server did.
// Its output is redis-server's, unchanged (the launcher waits for "Ready to accept connections").
//
//   node scripts/redis-child.mjs <redis-server arguments...>

import { spawn } from 'node:child_process'

const redis = spawn('redis-server', process.argv.slice(2), { stdio: ['ignore', 'inherit', 'inherit'], detached: true })
const pass = signal => () => redis.kill(signal)
process.on('SIGTERM', pass('SIGTERM'))
process.on('SIGINT', pass('SIGTERM'))
process.on('disconnect', pass('SIGTERM'))
redis.on('error', err => {
  process.stderr.write(`redis-server: ${err.message}\n`)
  process.exit(1)
})
redis.on('exit', (code, signal) => process.exit(signal === null ? code : 1))
