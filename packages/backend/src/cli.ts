#!/usr/bin/env node
import type { AddressInfo } from 'node:net'
import yargs from 'yargs'
import { hideBin } from 'yargs/helpers'
import { VERSION, unknownFlag } from './cli-flags.js'
import { onStop } from './cli-stop.js'
import { CLI_KEYS, resolveCliConfig } from './config.js'
import { ConfigError } from './errors.js'
import { createBackend, listeningUrl } from './server.js'

const NAME = 'switchyard-backend'
/** One line a person can act on, by the error `listen` failed with. */
const LISTEN_HINTS = new Map([
  ['EADDRINUSE', 'the port is in use (EADDRINUSE); stop what holds it or choose another --port'],
  [
    'EACCES',
    'permission denied (EACCES); ports below 1024 need root or `sudo setcap cap_net_bind_service=+ep $(command -v node)`, or use --port 5000',
  ],
])

function parseArgs(argv: string[]): Record<string, unknown> {
  return yargs(argv)
    .scriptName(NAME)
    .usage('$0 [options]\n\nAnswers HTTP requests, with a response cache in front of the routes.')
    .option('port', { type: 'string', requiresArg: true, describe: 'Port to listen on, 0 to 65535 [default: 5000]' })
    .option('host', { type: 'string', requiresArg: true, describe: 'Address to listen on [default: 127.0.0.1]' })
    .option('id', { type: 'string', requiresArg: true, describe: 'Name sent in X-Served-By [default: backend-<port>]' })
    .option('cache-ttl', { type: 'string', requiresArg: true, describe: 'Seconds a response is cached; 0 turns caching off [default: 60]' })
    .option('cache-max-bytes', { type: 'string', requiresArg: true, describe: 'Cache size bound: bytes, or kb/mb/gb [default: 64mb]' })
    .option('shutdown-timeout', {
      type: 'string',
      requiresArg: true,
      describe: 'Seconds in-flight requests get after SIGTERM/SIGINT before exiting anyway [default: 10]',
    })
    .option('ws-max-message', {
      type: 'string',
      requiresArg: true,
      describe: 'Largest /ws message; bigger ones close with 1009: bytes, or kb/mb/gb [default: 1mb]',
    })
    .option('max-body-bytes-total', {
      type: 'string',
      requiresArg: true,
      describe: 'Most request-body bytes held by all requests at once; past it, 503: bytes, or kb/mb/gb [default: 64mb]',
    })
    .option('redis', {
      type: 'string',
      requiresArg: true,
      describe:
        'redis://[user:password@]host[:port][/db]: cache, sessions and jobs in this Redis, shared by every backend on it; REDIS_URL works too, and keeps a password out of `ps` [default: none, all in memory]',
    })
    .option('redis-prefix', {
      type: 'string',
      requiresArg: true,
      describe: 'Prefix of every Redis key, so stacks can share a Redis [default: switchyard:]',
    })
    .option('jobs-concurrency', { type: 'string', requiresArg: true, describe: 'Jobs a worker runs at once [default: 2]' })
    .option('session-ttl', { type: 'string', requiresArg: true, describe: 'Seconds a session lives after its last visit [default: 1800]' })
    .option('worker', {
      type: 'boolean',
      describe: 'Run jobs in this process too; --no-worker needs --redis [default: on without --redis, off with it]',
    })
    .option('lock-duration', {
      type: 'string',
      requiresArg: true,
      describe: "Seconds before a job whose worker died runs again (BullMQ's lock) [default: 30]",
    })
    .option('quiet', { type: 'boolean', describe: 'No per-request log lines' })
    .option('log-health-checks', { type: 'boolean', describe: 'Log GET /healthz requests too (off: they would drown the others)' })
    .option('expose-stats', { type: 'boolean', describe: 'Serve GET /stats (request counts per path: for tests only)' })
    .strict()
    .fail((msg: string, _err, y) => {
      throw new ConfigError(unknownFlag(msg, y, NAME) ?? msg.replace(/\s*\n\s*/g, ' '))
    })
    .help()
    .version('version', 'Show the version and exit', `${NAME} ${VERSION}`)
    .parseSync()
}

function main(): void {
  const args = parseArgs(hideBin(process.argv))
  const config = resolveCliConfig(Object.fromEntries(CLI_KEYS.map(key => [key, args[key]])), { REDIS_URL: process.env.REDIS_URL })
  const print = (line: string): void => void process.stdout.write(`${line}\n`)
  // A launcher that dies closes the pipe it read our output from; writing to it then must
  // not crash the shutdown that its death starts.
  process.stdout.on('error', () => {})
  const backend = createBackend({
    id: config.id,
    cacheTtl: config.cacheTtl,
    cacheMaxBytes: config.cacheMaxBytes,
    exposeStats: config.exposeStats,
    wsMaxMessage: config.wsMaxMessage,
    maxBodyBytesTotal: config.maxBodyBytesTotal,
    redis: config.redis,
    redisPrefix: config.redisPrefix,
    jobsConcurrency: config.jobsConcurrency,
    sessionTtl: config.sessionTtl,
    worker: config.worker,
    lockDuration: config.lockDuration,
    accessLog: config.quiet ? undefined : print,
    logHealthChecks: config.logHealthChecks,
    log: print,
  })

  backend.once('error', (err: NodeJS.ErrnoException) => {
    const hint = LISTEN_HINTS.get(String(err.code)) ?? err.message
    console.error(`${NAME}: cannot listen on ${config.host}:${config.port}: ${hint}`)
    process.exit(1)
  })
  backend.listen(config.port, config.host, () => {
    print(`${backend.id} listening on ${listeningUrl(backend.address() as AddressInfo)}`)
  })

  onStop({
    name: () => backend.id,
    print,
    timeout: config.shutdownTimeout,
    work: 'in-flight requests',
    finish: done => void backend.close(done),
  })
}

try {
  main()
} catch (err) {
  console.error(`${NAME}: ${(err as Error).message}`)
  process.exit(1)
}
